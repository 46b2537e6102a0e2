//! Students: small, fast models trained on gold/corrected data to replace the teacher.
//!
//! - [`tiny`]: a hash-embedding CNN over raw text, no pretrained encoder needed;
//! - [`head`]: a linear/MLP head over cached [`Encoder`](crate::Encoder) embeddings.

pub mod head;
pub mod tiny;
