//! The Gloss worker: what runs on a machine that lends its CPUs and GPUs to the cluster. It
//! registers with the coordinators with the join token, reports its capacity (GPUs read through
//! NVML or declared), heartbeats, and runs the jobs placed on it (train, evaluate, predict), each
//! on its own thread with `gloss-ml`, reporting progress and the result with the job's epoch
//! ([`worker`]). It also keeps base models and registry artifacts on disk ([`model_store`]) and
//! runs an exported student over JSON Lines without a cluster ([`predict`]). LLM teachers
//! (in-process GGUF or an OpenAI-compatible server) run in jobs through [`teachers`].
//!
//! Depends on `gloss-ml` for the models and reaches the cluster only over gRPC (`gloss-proto`,
//! `gloss-client`, `gloss-tls`). It must never depend on `gloss-coordinator` or another server
//! crate: a worker is a client of the cluster, and the coordinator never links ML code.

mod gpu;
mod job_run;
pub use job_run::{split_of, Split};
pub mod model_store;
pub mod predict;
pub mod teachers;
pub mod worker;
