//! Projects and datasets: creating and deleting them. A dataset's examples arrive through
//! imports (`imports.rs`).

use gloss_proto::v1::{
    command_result, CommandResult, CreateDataset, Dataset, DatasetKind, DatasetRecord, Project,
};
use gloss_proto::ErrorCode;
use gloss_store::{cf, keys, state_cf};

use crate::apply::Tx;
use crate::read;
use crate::{check_name, import_state, ok, rejected, StateError};

impl Tx<'_> {
    pub(crate) fn create_project(
        &mut self,
        at_ms: i64,
        name: &str,
        description: &str,
    ) -> Result<CommandResult, StateError> {
        if let Err(reason) = check_name("project", name) {
            return Ok(rejected(ErrorCode::InvalidArgument, reason));
        }
        if read::project(self.db, name)?.is_some() {
            return Ok(rejected(
                ErrorCode::AlreadyExists,
                format!("project {name:?} already exists"),
            ));
        }
        let project = Project {
            name: name.into(),
            description: description.into(),
            created_at_ms: at_ms,
            dataset_count: 0,
        };
        self.put(state_cf::PROJECTS, &keys::project(name), &project)?;
        Ok(ok(command_result::Result::Project(project)))
    }

    pub(crate) fn delete_project(
        &mut self,
        name: &str,
        force: bool,
    ) -> Result<CommandResult, StateError> {
        let Some(_) = read::project(self.db, name)? else {
            return Ok(rejected(
                ErrorCode::NotFound,
                format!("project {name:?} not found"),
            ));
        };
        let datasets = read::datasets(self.db, name)?;
        if !datasets.is_empty() && !force {
            return Ok(rejected(
                ErrorCode::FailedPrecondition,
                format!(
                    "project {name:?} still has {} dataset(s); delete them first or use force",
                    datasets.len()
                ),
            ));
        }
        for d in &datasets {
            self.drop_dataset(name, &d.name)?;
        }
        self.batch
            .delete_cf(cf(self.db, state_cf::PROJECTS)?, keys::project(name));
        Ok(ok(command_result::Result::Ok(true)))
    }

    /// Creates a dataset, or returns the rejection to give back.
    pub(crate) fn create_dataset(
        &mut self,
        at_ms: i64,
        c: &CreateDataset,
    ) -> Result<Result<DatasetRecord, CommandResult>, StateError> {
        if let Err(reason) = check_name("dataset", &c.name) {
            return Ok(Err(rejected(ErrorCode::InvalidArgument, reason)));
        }
        let Some(mut project) = read::project(self.db, &c.project)? else {
            return Ok(Err(rejected(
                ErrorCode::NotFound,
                format!("project {:?} not found", c.project),
            )));
        };
        if read::dataset(self.db, &c.project, &c.name)?.is_some() {
            return Ok(Err(rejected(
                ErrorCode::AlreadyExists,
                format!("dataset {}/{} already exists", c.project, c.name),
            )));
        }
        let kind = match DatasetKind::try_from(c.kind) {
            Ok(DatasetKind::Unspecified) | Err(_) => DatasetKind::Source,
            Ok(k) => k,
        };
        let rec = DatasetRecord {
            dataset_id: self.next_id(keys::meta::NEXT_DATASET_ID)?,
            dataset: Some(Dataset {
                project: c.project.clone(),
                name: c.name.clone(),
                kind: kind as i32,
                description: c.description.clone(),
                created_at_ms: at_ms,
                ..Dataset::default()
            }),
            next_seq: 1,
            open_imports: Vec::new(),
            task: String::new(),
        };
        self.put(
            state_cf::DATASETS,
            &keys::dataset(&c.project, &c.name),
            &rec,
        )?;
        project.dataset_count += 1;
        self.put(state_cf::PROJECTS, &keys::project(&c.project), &project)?;
        Ok(Ok(rec))
    }

    pub(crate) fn delete_dataset(
        &mut self,
        project: &str,
        name: &str,
    ) -> Result<CommandResult, StateError> {
        if read::dataset(self.db, project, name)?.is_none() {
            return Ok(rejected(
                ErrorCode::NotFound,
                format!("dataset {project}/{name} not found"),
            ));
        }
        self.drop_dataset(project, name)?;
        if let Some(mut p) = read::project(self.db, project)? {
            p.dataset_count = p.dataset_count.saturating_sub(1);
            self.put(state_cf::PROJECTS, &keys::project(project), &p)?;
        }
        Ok(ok(command_result::Result::Ok(true)))
    }

    /// Removes a dataset, its examples, its index and its open imports.
    pub(crate) fn drop_dataset(&mut self, project: &str, name: &str) -> Result<(), StateError> {
        let Some(rec) = read::dataset(self.db, project, name)? else {
            return Ok(());
        };
        let id = rec.dataset_id;
        for cf_name in [state_cf::EXAMPLES, state_cf::EXAMPLE_INDEX] {
            self.batch.delete_range_cf(
                cf(self.db, cf_name)?,
                keys::id_prefix(id),
                keys::id_prefix(id + 1),
            );
        }
        for import_id in &rec.open_imports {
            if let Some(mut imp) = read::import(self.db, *import_id)? {
                imp.state = import_state::ABORTED;
                imp.abort_reason = "dataset deleted".into();
                self.put(state_cf::IMPORTS, &keys::import(*import_id), &imp)?;
            }
            self.clear_import_index(*import_id)?;
        }
        self.batch.delete_cf(
            cf(self.db, state_cf::DATASETS)?,
            keys::dataset(project, name),
        );
        Ok(())
    }
}
