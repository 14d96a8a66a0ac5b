//! The record of what `hugepages reserve` changed, so that `hugepages release`, run later in
//! another process, undoes exactly that: the pages it added and the mounts it made, never pages or
//! mounts that were there before.
//!
//! It is a small JSON file, by default in `/run` (a tmpfs, so it goes away with the reservations
//! at reboot). Invocations are expected to be serialised by the operator or the service manager;
//! the file is not locked.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sysfs::io_error;
use crate::{Error, Mount, Reservation, Sys};

/// Where the CLI keeps its record unless told otherwise (`--state`).
pub const DEFAULT_STATE_PATH: &str = "/run/scistream/hugepages.json";

/// Reservations and mounts made and not yet released.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub reservations: Vec<Reservation>,
    /// hugetlbfs mounts this crate mounted (reused mounts are not recorded).
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

impl State {
    /// Reads the state at `path`; a missing file is an empty state.
    pub fn load(sys: &dyn Sys, path: &Path) -> Result<Self, Error> {
        let text = match sys.read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(io_error("reading", path, source)),
        };
        serde_json::from_str(&text).map_err(|source| Error::StateFile {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the state to `path`, creating its directory.
    pub fn save(&self, sys: &dyn Sys, path: &Path) -> Result<(), Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            sys.create_dir_all(dir).map_err(|source| {
                Error::privileged("creating", dir.to_owned(), sys.euid(), source)
            })?;
        }
        let mut text = serde_json::to_string_pretty(self).map_err(|source| Error::StateFile {
            path: path.to_owned(),
            source,
        })?;
        text.push('\n');
        sys.write(path, &text)
            .map_err(|source| Error::privileged("writing", PathBuf::from(path), sys.euid(), source))
    }

    /// Adds a reservation, merged with an earlier one of the same node and size.
    pub fn record(&mut self, reservation: Reservation) {
        if reservation.added == 0 {
            return;
        }
        match self
            .reservations
            .iter_mut()
            .find(|r| r.node == reservation.node && r.size == reservation.size)
        {
            Some(r) => r.added += reservation.added,
            None => self.reservations.push(reservation),
        }
    }

    pub fn record_mount(&mut self, mount: Mount) {
        if !self.mounts.contains(&mount) {
            self.mounts.push(mount);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reservations.is_empty() && self.mounts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeSys;
    use crate::{NodeId, PageSize};

    #[test]
    fn state_round_trips_and_merges_reservations() {
        let sys = FakeSys::new();
        let path = Path::new("/run/scistream/hugepages.json");
        assert_eq!(State::load(&sys, path).unwrap(), State::default());
        let mut state = State::default();
        let r = Reservation {
            node: NodeId(0),
            size: PageSize::TWO_MIB,
            added: 5,
        };
        state.record(r);
        state.record(r);
        state.record(Reservation { added: 0, ..r });
        state.record_mount(Mount {
            path: "/dev/hugepages".into(),
            page_size: PageSize::TWO_MIB,
        });
        state.save(&sys, path).unwrap();
        let text = sys.read_to_string(path).unwrap();
        assert!(
            text.contains("\"size\": \"2M\"") && text.contains("\"added\": 10"),
            "{text}"
        );
        assert_eq!(State::load(&sys, path).unwrap(), state);
    }

    #[test]
    fn corrupt_state_says_what_to_do() {
        let sys = FakeSys::new();
        sys.set_file("/run/s.json", "{not json");
        let err = State::load(&sys, Path::new("/run/s.json")).unwrap_err();
        assert!(matches!(err, Error::StateFile { .. }), "{err}");
        assert!(err.to_string().contains("fix it or remove it"), "{err}");
    }
}
