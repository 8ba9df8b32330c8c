//! Choosing an endpoint: smooth weighted round robin (the seed's
//! `weighted_round_robin`, as nginx does it: every pick adds each
//! endpoint's weight to its running score, takes the highest, and takes
//! the total back from it, so a cycle of `sum(weights)` picks gives each
//! endpoint exactly its weight, spread out), or least loaded of two random
//! choices (fewest calls in flight).

/// How a service's endpoints are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Smooth weighted round robin.
    #[default]
    WeightedRoundRobin,
    /// The less loaded of two endpoints picked at random.
    LeastLoaded,
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "weighted_round_robin" => Ok(Self::WeightedRoundRobin),
            "least_loaded" => Ok(Self::LeastLoaded),
            other => Err(format!(
                "{other:?} is not weighted_round_robin or least_loaded"
            )),
        }
    }
}

/// The running scores of smooth weighted round robin.
#[derive(Debug, Clone, Default)]
pub struct WeightedRoundRobin {
    current: Vec<i64>,
}

impl WeightedRoundRobin {
    /// Picks among endpoints of `weights` (0 = not eligible); `None` when
    /// none is eligible. The scores follow the list's positions, so keep
    /// one picker per list and reset it when the list changes.
    pub fn pick(&mut self, weights: &[u32]) -> Option<usize> {
        if self.current.len() != weights.len() {
            self.current = vec![0; weights.len()];
        }
        let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut best: Option<usize> = None;
        for (i, weight) in weights.iter().enumerate() {
            if *weight == 0 {
                continue;
            }
            self.current[i] += i64::from(*weight);
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        self.current[chosen] -= total;
        Some(chosen)
    }
}

/// The less loaded of two distinct endpoints chosen by `random` (a source
/// of indexes), among those whose `loads` entry is `Some`.
pub fn least_loaded(
    loads: &[Option<usize>],
    mut random: impl FnMut(usize) -> usize,
) -> Option<usize> {
    let eligible: Vec<usize> = loads
        .iter()
        .enumerate()
        .filter_map(|(i, load)| load.map(|_| i))
        .collect();
    match eligible.len() {
        0 => None,
        1 => Some(eligible[0]),
        n => {
            let a = random(n);
            let mut b = random(n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (eligible[a], eligible[b]);
            Some(if loads[b] < loads[a] { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cycle_gives_every_endpoint_its_weight_spread_out() {
        let mut picker = WeightedRoundRobin::default();
        let weights = [5, 1, 1];
        let picks: Vec<usize> = (0..7).filter_map(|_| picker.pick(&weights)).collect();
        // nginx's classic sequence for 5:1:1.
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        // Many cycles: within one of the exact share at every cycle end.
        let weights = [3, 2, 4, 1];
        let mut counts = [0_i64; 4];
        for cycle in 1..=50 {
            for _ in 0..10 {
                if let Some(i) = picker.pick(&weights) {
                    counts[i] += 1;
                }
            }
            for (i, w) in weights.iter().enumerate() {
                assert!(
                    (counts[i] - i64::from(*w) * cycle).abs() <= 1,
                    "cycle {cycle}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn ineligible_endpoints_are_skipped() {
        let mut picker = WeightedRoundRobin::default();
        let picks: Vec<usize> = (0..4).filter_map(|_| picker.pick(&[2, 0, 2])).collect();
        assert!(!picks.contains(&1));
        assert_eq!(picker.pick(&[0, 0, 0]), None);
    }

    #[test]
    fn the_less_loaded_of_two_wins() {
        let mut draws = [0_usize, 0].into_iter();
        assert_eq!(
            least_loaded(&[Some(9), Some(1), None], |_| draws.next().unwrap_or(0)),
            Some(1)
        );
        assert_eq!(least_loaded(&[None, Some(3)], |_| 0), Some(1));
        assert_eq!(least_loaded(&[None, None], |_| 0), None);
    }
}
