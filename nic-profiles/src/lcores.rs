//! The lcores one process actually runs on: the main lcore and the dataplane lcores, each
//! polling its own rx queue and transmitting on its own tx queue of every port.
//!
//! A layout comes from the profile's recommendation ([`LcoreLayout::from_profile`], which
//! turns a count into concrete cores of this host) or from the operator (s2cs `--cores`,
//! [`LcoreLayout::new`]). It is plain data; [`validate_deployment`](crate::validate_deployment)
//! checks it against the profile (ids, duplicates, one tx queue per lcore).

use crate::error::{ProfileError, Violation};
use crate::profile::{DataplaneLcores, Profile};

/// Main lcore plus dataplane lcores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcoreLayout {
    pub main: u32,
    /// In the order queues are assigned: the n-th dataplane lcore polls queue n.
    pub dataplane: Vec<u32>,
}

impl LcoreLayout {
    pub fn new(main: u32, dataplane: Vec<u32>) -> Self {
        Self { main, dataplane }
    }

    /// The profile's `[lcores]` on this host: a list is taken as is; a count takes the first
    /// `online` cores other than the main lcore.
    pub fn from_profile(profile: &Profile, online: &[u32]) -> Result<Self, ProfileError> {
        let main = profile.lcores.main;
        let dataplane = match &profile.lcores.dataplane {
            DataplaneLcores::List(ids) => ids.clone(),
            DataplaneLcores::Count(n) => {
                let free: Vec<u32> = online.iter().copied().filter(|&c| c != main).collect();
                if free.len() < *n as usize {
                    return Err(ProfileError::Deployment {
                        origin: profile.origin().clone(),
                        violations: vec![Violation {
                            field: "lcores.dataplane".into(),
                            value: Some(n.to_string()),
                            problem: format!(
                                "this host has {} online cores besides main lcore {main} \
                                 (online: {online:?})",
                                free.len()
                            ),
                            fix: format!(
                                "give the cores explicitly (s2cs --cores) or lower \
                                 lcores.dataplane to {}",
                                free.len()
                            ),
                        }],
                    });
                }
                free[..*n as usize].to_vec()
            }
        };
        Ok(Self { main, dataplane })
    }

    /// Every lcore EAL starts, sorted and without duplicates (`-l`).
    pub fn lcores(&self) -> Vec<u32> {
        let mut all = self.dataplane.clone();
        all.push(self.main);
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The `-l` argument: lcore ids separated by commas.
    pub fn eal_list(&self) -> String {
        self.lcores()
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_takes_the_first_online_cores_other_than_main() {
        let mut p = Profile::builtin("ring").unwrap();
        p.lcores.main = 1;
        p.lcores.dataplane = DataplaneLcores::Count(2);
        let l = LcoreLayout::from_profile(&p, &[0, 1, 2, 3]).unwrap();
        assert_eq!(l, LcoreLayout::new(1, vec![0, 2]));
        assert_eq!(l.eal_list(), "0,1,2");

        let err = LcoreLayout::from_profile(&p, &[0, 1])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the ports and lcores given do not fit builtin NIC profile \"ring\": \
             lcores.dataplane = 2: this host has 1 online cores besides main lcore 1 \
             (online: [0, 1]); give the cores explicitly (s2cs --cores) or lower \
             lcores.dataplane to 1"
        );
    }

    #[test]
    fn a_list_is_taken_as_is() {
        let mut p = Profile::builtin("ring").unwrap();
        p.lcores.dataplane = DataplaneLcores::List(vec![3, 2]);
        let l = LcoreLayout::from_profile(&p, &[0]).unwrap();
        assert_eq!(l.dataplane, [3, 2]);
        assert_eq!(l.eal_list(), "0,2,3");
    }
}
