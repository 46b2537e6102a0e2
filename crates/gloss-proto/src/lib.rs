//! The Gloss wire contract: Rust types and tonic services generated at build time from
//! `proto/gloss/v1/*.proto`, and the encoded descriptor set that powers gRPC server reflection.
//!
//! This crate only holds generated code and tiny conveniences over it; it must never grow
//! business logic (that lives in `gloss-state` and `gloss-coordinator`).

/// Version 1 of the Gloss API.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("gloss.v1");
}

pub mod code;
pub use code::ErrorCode;

/// Encoded `FileDescriptorSet` of every Gloss proto file, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gloss_descriptor.bin"));

/// Version of the encoding of [`v1::Command`] written by this binary.
pub const COMMAND_VERSION: u32 = 1;

/// Version of a [`v1::Command`] whose body is a `CommandBatch`: a node that does not know
/// batches stops on it (an unsupported version) rather than applying it as an empty command.
pub const BATCH_VERSION: u32 = 2;

/// One line describing a bad import record: "line 3, field `text`: is missing".
impl std::fmt::Display for v1::RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "line {}: {}", self.line, self.reason)
        } else {
            write!(
                f,
                "line {}, field `{}`: {}",
                self.line, self.field, self.reason
            )
        }
    }
}
