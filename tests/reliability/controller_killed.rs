//! Issue 7, item 1: the controller killed mid-flight. The real `mettaton
//! controller` binary reconciles a fleet of GameServers (a third with a Retain
//! volume, a third with a Delete volume, a third without; every fourth with a
//! config file) while the test creates them, changes their image, environment,
//! config and state, deletes them and creates some again under the same name,
//! eight requests at a time. In every round the process gets SIGKILL at a
//! random moment (sometimes a second time soon after its restart, while it
//! recovers), is started again after a random pause, and the test waits until
//! everything agrees with what was asked: no child without its live owner or
//! owned by an earlier incarnation, no GameServer left with its finalizer,
//! every status current, every Retain volume still the same PVC, no Delete
//! volume left. The last round deletes every GameServer.

use std::time::{Duration, Instant};

use crate::fleet::{Fleet, check_applied, check_kubernetes, converge};
use crate::process::Controller;
use crate::setup::{Profile, Rng, figure, secs, spread};
use crate::support::{TestNamespace, ensure_crd};

const TEST: &str = "controller kill -9 (kubernetes)";
/// Images only kwok sees (no pull happens): a change rolls the Deployment.
const IMAGES: [&str; 3] = ["mettaton.test/game:1", "mettaton.test/game:2", "mettaton.test/game:3"];

enum Round {
    CreateAll,
    Mixed,
    DeleteAll,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disrupts shared infrastructure: run by ./run-tests on its own (see main.rs)"]
async fn a_controller_killed_mid_flight_converges_with_nothing_lost() {
    let profile = Profile::get();
    let mut rng = Rng::seeded(TEST);
    ensure_crd().await;
    let ns = TestNamespace::new("rel-kill").await;
    let mut fleet = Fleet::new(ns.client.clone(), &ns.name, profile.servers, &IMAGES);
    let mut controller = Controller::start(&ns.name, &[]);
    let bound = profile.bound(Duration::from_secs(300));

    let mut rounds = vec![Round::CreateAll];
    rounds.extend((0..profile.mixed_rounds).map(|_| Round::Mixed));
    rounds.push(Round::DeleteAll);
    let mut recoveries = Vec::new();
    for (i, round) in rounds.iter().enumerate() {
        let (label, ops) = match round {
            Round::CreateAll => ("create all", fleet.create_all(&mut rng)),
            Round::Mixed => ("mixed", fleet.mixed(&mut rng)),
            Round::DeleteAll => ("delete all", fleet.delete_all(&mut rng)),
        };
        let planned = ops.len();
        let kill_at = rng.duration(Duration::from_millis(200), Duration::from_secs(12));
        let down_for = rng.duration(Duration::ZERO, Duration::from_secs(3));
        let again = rng.chance(1.0 / 3.0).then(|| {
            (
                rng.duration(Duration::from_millis(500), Duration::from_secs(6)),
                rng.duration(Duration::ZERO, Duration::from_secs(2)),
            )
        });
        let began = Instant::now();
        let sending = async {
            let done = fleet.run(ops, 8, Duration::from_secs(60)).await;
            (done, began.elapsed())
        };
        let killing = async {
            controller.kill_and_restart(kill_at, down_for).await;
            if let Some((after, down)) = again {
                controller.kill_and_restart(after, down).await;
            }
            Instant::now()
        };
        let ((done, sent_in), restarted) = futures::join!(sending, killing);
        let round = format!("round {i} ({label})");
        let ((applied, _), (recovery, volumes)) = futures::join!(
            converge("changes applied", restarted, bound, || controller.tail(), || check_applied(&fleet)),
            converge(&round, restarted, bound, || controller.tail(), || check_kubernetes(&fleet))
        );
        controller.assert_running();
        fleet.settle(&volumes);
        recoveries.push(recovery);
        let second = match again {
            Some((after, down)) => format!(", killed again {} after the restart (down {})", secs(after), secs(down)),
            None => String::new(),
        };
        figure(
            TEST,
            &format!(
                "round {i} ({label}): {done}/{planned} operations sent in {}; SIGKILL at {} (down {}){second}; \
                 after the last restart, every change applied in {}, everything converged in {}",
                secs(sent_in),
                secs(kill_at),
                secs(down_for),
                secs(applied),
                secs(recovery)
            ),
        );
    }

    let log = controller.log();
    assert!(!log.contains("panicked"), "the controller panicked:\n{}", controller.tail());
    figure(
        TEST,
        &format!(
            "{} servers, {} rounds, {} kills, {} starts; restart to converged: {}; {}",
            profile.servers,
            rounds.len(),
            controller.kills,
            controller.starts,
            spread(&recoveries),
            fleet.summary()
        ),
    );
    // Every operation of every kind happened at least once.
    for kind in ["create", "image", "env", "config", "state", "delete"] {
        assert!(fleet.done.get(kind).is_some_and(|n| *n > 0), "no {kind} operation ran: {:?}", fleet.done);
    }
    assert!(
        fleet.servers.values().any(|s| s.incarnations > 1),
        "no GameServer was created again under its old name: {:?}",
        fleet.done
    );
    controller.stop();
}
