//! `status.players`: who is playing, as the game's join and leave lines tell
//! (`spec.players`), counted by mettaton's supervisor in the game's container
//! and read by the controller. Pure, like the rest of `status`: the read
//! report and `now` are passed in.
//!
//! The players change only on a read that finds them changed, or when the
//! game stops running (nobody can be online then): a status computed again
//! with the same inputs is equal, so the controller writes it only when the
//! players really changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{GameServerSpec, GameServerStatus, PlayersStatus};
use crate::orchestrator::Instance;

/// How many names `status.players.names` holds at most (the CRD's bound).
pub const MAX_NAMES: usize = 100;

/// `status.players` as [`super::compute_for`] carries it over from the
/// previous status `prev`: none without `spec.players`; nobody online
/// (count 0) while no instance runs the game, or when its container restarted
/// since `prev` (its supervisor counts from 0 again); else the players of
/// `prev`, until the controller reads them anew ([`read`]). A server whose
/// game runs but was never read has none yet.
pub fn kept(
    spec: &GameServerSpec,
    prev: &GameServerStatus,
    instance: Option<&Instance>,
    now: &Time,
) -> Option<PlayersStatus> {
    spec.players.as_ref()?;
    let runs = instance.is_some_and(|i| i.running && i.restarts == prev.restarts);
    match &prev.players {
        Some(players) if runs => Some(players.clone()),
        None if runs => None,
        Some(players) if players.count == 0 && players.names.is_empty() => Some(players.clone()),
        _ => Some(PlayersStatus { count: 0, names: Vec::new(), last_change_time: Some(super::whole_seconds(now)) }),
    }
}

/// `status.players` after a read at `now` found `count` players online,
/// `names` among them: `prev` itself when they are the same players (its
/// `lastChangeTime` kept), else the new ones changed at `now`. The names are
/// sorted, without duplicates, at most [`MAX_NAMES`] (what the schema takes),
/// and the count is never below the names listed.
pub fn read(prev: Option<&PlayersStatus>, count: u32, names: &[String], now: &Time) -> PlayersStatus {
    let mut names: Vec<String> = names.to_vec();
    names.sort();
    names.dedup();
    names.truncate(MAX_NAMES);
    let count = i32::try_from(count).unwrap_or(i32::MAX).max(i32::try_from(names.len()).unwrap_or(i32::MAX));
    match prev {
        Some(p) if p.count == count && p.names == names => p.clone(),
        _ => PlayersStatus { count, names, last_change_time: Some(super::whole_seconds(now)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(1_767_225_600 + s).unwrap())
    }

    fn spec(players: bool) -> GameServerSpec {
        let mut spec = serde_json::json!({
            "image": "game", "command": ["/game"], "ports": [{ "name": "game", "containerPort": 7777 }]
        });
        if players {
            spec["players"] = serde_json::json!({
                "joinLine": ["regex:^(\\S+) joined"], "leaveLine": ["regex:^(\\S+) left"]
            });
        }
        serde_json::from_value(spec).unwrap()
    }

    fn instance(running: bool, restarts: i32) -> Instance {
        Instance { name: "p".into(), running, ready: running, restarts, problem: None, terminating: false }
    }

    fn players(count: i32, names: &[&str], changed: i64) -> PlayersStatus {
        PlayersStatus {
            count,
            names: names.iter().map(|n| n.to_string()).collect(),
            last_change_time: Some(at(changed)),
        }
    }

    fn prev(players: Option<PlayersStatus>, restarts: i32) -> GameServerStatus {
        GameServerStatus { players, restarts, ..Default::default() }
    }

    #[test]
    fn without_spec_players_there_are_none() {
        let p = prev(Some(players(2, &["a", "b"], 1)), 0);
        assert_eq!(kept(&spec(false), &p, Some(&instance(true, 0)), &at(5)), None);
    }

    #[test]
    fn the_players_read_last_are_kept_while_the_same_container_runs() {
        let p = prev(Some(players(2, &["a", "b"], 1)), 3);
        assert_eq!(kept(&spec(true), &p, Some(&instance(true, 3)), &at(50)), Some(players(2, &["a", "b"], 1)));
        // Running but never read: unknown, not zero.
        assert_eq!(kept(&spec(true), &prev(None, 0), Some(&instance(true, 0)), &at(50)), None);
    }

    #[test]
    fn nobody_plays_on_a_server_whose_game_does_not_run_or_just_restarted() {
        let s = spec(true);
        let online = prev(Some(players(2, &["a", "b"], 1)), 0);
        let nobody = Some(players(0, &[], 9));
        assert_eq!(kept(&s, &online, None, &at(9)), nobody, "no instance (stopped)");
        assert_eq!(kept(&s, &online, Some(&instance(false, 0)), &at(9)), nobody, "not running");
        assert_eq!(kept(&s, &online, Some(&instance(true, 1)), &at(9)), nobody, "restarted: counts from 0");
        // A server that never had players: 0 from the start.
        assert_eq!(kept(&s, &prev(None, 0), None, &at(9)), nobody);
        // Already nobody: unchanged, its time kept (nothing to write).
        let empty = prev(Some(players(0, &[], 4)), 0);
        assert_eq!(kept(&s, &empty, None, &at(9)), Some(players(0, &[], 4)));
    }

    #[test]
    fn a_read_changes_the_players_only_when_they_differ() {
        let before = players(2, &["a", "b"], 1);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The same players, in another order: unchanged, time kept.
        assert_eq!(read(Some(&before), 2, &names(&["b", "a"]), &at(30)), before);
        // One more: changed now.
        assert_eq!(read(Some(&before), 3, &names(&["a", "b", "c"]), &at(30)), players(3, &["a", "b", "c"], 30));
        // The first read.
        assert_eq!(read(None, 0, &[], &at(30)), players(0, &[], 30));
        // Beyond the names kept: the count says it.
        let many: Vec<String> = (0..150).map(|i| format!("p{i:03}")).collect();
        let p = read(None, 150, &many, &at(30));
        assert_eq!((p.count, p.names.len()), (150, MAX_NAMES));
        assert_eq!(p.names[0], "p000");
        // Never fewer than named (a report that contradicts itself).
        assert_eq!(read(None, 1, &names(&["a", "b", "a"]), &at(30)), players(2, &["a", "b"], 30));
    }
}
