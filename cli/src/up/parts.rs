//! Which services one process runs: all of them under `backtrack up`, one under
//! `backtrack serve SERVICE`, with the read-side projections that service needs.

/// Which services one process runs. `backtrack up` runs all of them; `backtrack serve X`
/// runs X, with the read-side projections X needs kept by the process itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// The process's name on NATS and in logs.
    pub name: &'static str,
    /// Directory API and token API (the system of record).
    pub directory_api: bool,
    /// A directory view without its API (a recovery process plans against it and applies
    /// through the directory service).
    pub directory_view: bool,
    /// Backup and time-travel APIs with the backup scheduler.
    pub snapshotter_api: bool,
    /// A time-travel store without API and without scheduler (a differ's or recovery's own).
    pub snapshotter_replica: bool,
    /// Difference report API with its retention sweeper.
    pub differ_api: bool,
    /// The report store without its API (a recovery process reads reports).
    pub differ_reader: bool,
    pub recovery_api: bool,
    pub audit_api: bool,
    /// `backtrack up`: writes the admin token, seeds the demo tenant with `--demo`, prints
    /// the tour's banner.
    pub all_in_one: bool,
}

impl Parts {
    /// Everything, as `backtrack up` runs it.
    pub fn all() -> Self {
        Self {
            name: "backtrack-up",
            directory_api: true,
            directory_view: false,
            snapshotter_api: true,
            snapshotter_replica: false,
            differ_api: true,
            differ_reader: false,
            recovery_api: true,
            audit_api: true,
            all_in_one: true,
        }
    }

    fn none(name: &'static str) -> Self {
        Self {
            name,
            directory_api: false,
            directory_view: false,
            snapshotter_api: false,
            snapshotter_replica: false,
            differ_api: false,
            differ_reader: false,
            recovery_api: false,
            audit_api: false,
            all_in_one: false,
        }
    }

    pub fn directory() -> Self {
        Self {
            directory_api: true,
            ..Self::none("backtrack-directory")
        }
    }

    pub fn snapshotter() -> Self {
        Self {
            snapshotter_api: true,
            ..Self::none("backtrack-snapshotter")
        }
    }

    pub fn differ() -> Self {
        Self {
            snapshotter_replica: true,
            differ_api: true,
            ..Self::none("backtrack-differ")
        }
    }

    pub fn recovery() -> Self {
        Self {
            directory_view: true,
            snapshotter_replica: true,
            differ_reader: true,
            recovery_api: true,
            ..Self::none("backtrack-recovery")
        }
    }

    pub fn audit() -> Self {
        Self {
            audit_api: true,
            ..Self::none("backtrack-audit")
        }
    }

    pub(crate) fn runs_directory(&self) -> bool {
        self.directory_api || self.directory_view
    }

    pub(crate) fn runs_snapshotter(&self) -> bool {
        self.snapshotter_api || self.snapshotter_replica
    }

    pub(crate) fn runs_differ(&self) -> bool {
        self.differ_api || self.differ_reader
    }
}
