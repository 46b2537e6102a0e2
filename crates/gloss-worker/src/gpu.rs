//! GPU inventory through NVML, when the NVIDIA driver is present (the library is loaded at run
//! time; a machine without it simply has no GPUs).

use gloss_proto::v1::Gpu;

/// The machine's GPUs with their model and memory; empty without a driver.
pub fn detect() -> Vec<Gpu> {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => {
            tracing::info!(reason = %e, "no NVML: this worker offers no GPU");
            return Vec::new();
        }
    };
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| {
            let d = nvml.device_by_index(i).ok()?;
            Some(Gpu {
                index: i,
                model: d.name().unwrap_or_else(|_| "unknown".into()),
                memory_bytes: d.memory_info().ok()?.total,
            })
        })
        .collect()
}
