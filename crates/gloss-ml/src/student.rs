//! Students: small, fast models trained on gold/corrected data to replace the teacher.

pub mod tiny;
