//! Human-readable quantities for status messages.

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// `80 GiB`, `1.5 GiB`, `512 MiB`, `100 B`.
pub(crate) fn bytes(n: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if n >= unit {
            return if n % unit == 0 {
                format!("{} {name}", n / unit)
            } else {
                format!("{:.1} {name}", n as f64 / unit as f64)
            };
        }
    }
    format!("{n} B")
}

/// `4 CPUs`, `1 CPU`, `1.5 CPUs`, `0.25 CPUs` from thousandths of a core.
pub(crate) fn cpus(millis: u64) -> String {
    let whole = millis / 1000;
    let frac = millis % 1000;
    if frac == 0 {
        let s = if whole == 1 { "" } else { "s" };
        return format!("{whole} CPU{s}");
    }
    let digits = format!("{frac:03}");
    format!("{whole}.{} CPUs", digits.trim_end_matches('0'))
}

/// `2 GPUs with 80 GiB each`, `1 L4 GPU with 24 GiB`, `2 whole A100 GPUs`.
pub(crate) fn gpu_phrase(count: u32, memory_bytes: u64, model: Option<&str>) -> String {
    let plural = if count == 1 { "" } else { "s" };
    let model = model.map(|m| format!("{m} ")).unwrap_or_default();
    if memory_bytes == 0 {
        return format!("{count} whole {model}GPU{plural}");
    }
    let each = if count == 1 { "" } else { " each" };
    format!(
        "{count} {model}GPU{plural} with {} GPU memory{each}",
        bytes(memory_bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_naturally() {
        assert_eq!(bytes(80 * GIB), "80 GiB");
        assert_eq!(bytes(3 * GIB / 2), "1.5 GiB");
        assert_eq!(bytes(512 * MIB), "512 MiB");
        assert_eq!(bytes(100), "100 B");
        assert_eq!(cpus(1000), "1 CPU");
        assert_eq!(cpus(4000), "4 CPUs");
        assert_eq!(cpus(1500), "1.5 CPUs");
        assert_eq!(cpus(250), "0.25 CPUs");
        assert_eq!(
            gpu_phrase(2, 80 * GIB, None),
            "2 GPUs with 80 GiB GPU memory each"
        );
        assert_eq!(
            gpu_phrase(1, 24 * GIB, Some("L4")),
            "1 L4 GPU with 24 GiB GPU memory"
        );
        assert_eq!(gpu_phrase(2, 0, Some("A100")), "2 whole A100 GPUs");
    }
}
