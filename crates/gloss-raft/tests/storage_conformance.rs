//! Openraft's storage conformance suite against the RocksDB log store and state machine.

use gloss_raft::openraft::testing::{StoreBuilder, Suite};
use gloss_raft::{LogStore, StateMachineStore, StorageError, TypeConfig};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(&dir.path().join("raft-log")).expect("open log store");
        let sm = StateMachineStore::open(dir.path()).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() -> Result<(), StorageError> {
    Suite::test_all(RocksBuilder)?;
    Ok(())
}
