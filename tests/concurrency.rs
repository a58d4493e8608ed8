//! Two `provision` runs at once (a retried hook next to a new one, or two upgrades racing):
//! both must finish successfully, agree on what they provisioned, and leave exactly the state
//! of one clean run. Races the job must absorb: both see a role, the policy or the provider
//! missing and both create it (`EntityAlreadyExists` for one of them), both apply the same
//! annotations, both restart the same Deployment.

mod reliability;

use std::time::{Duration, Instant};

use reliability::{assert_same, baseline, provision_env, state, teardown_env, State, BIN};
use serde_json::json;
use testkit::world::{ConcurrentRun, RunOutput, World};

fn role_arns(out: &RunOutput) -> Vec<String> {
    let mut arns: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" role ARN: "))
        .map(str::to_string)
        .collect();
    arns.sort();
    arns
}

/// moto counts an `AttachRolePolicy` of an already attached policy once more in the policy's
/// `AttachmentCount` (real IAM does not: attaching is idempotent), and two racing runs may
/// both attach. Count what the roles list instead, which is what IAM reports.
fn counted_from_roles(mut s: State) -> State {
    let roles = s.iam["roles"].clone();
    if let Some(policies) = s.iam["policies"].as_object_mut() {
        for (arn, policy) in policies.iter_mut() {
            let n = roles
                .as_object()
                .into_iter()
                .flat_map(|r| r.values())
                .filter(|r| {
                    r["attached"]
                        .as_array()
                        .is_some_and(|a| a.contains(&json!(arn)))
                })
                .count();
            policy["attachments"] = json!(n);
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn two_provisions_started_together_both_finish_and_agree() {
    let started = Instant::now();
    let w = World::new(BIN).await;
    let base = baseline(&w).await;
    let env: Vec<(String, String)> = provision_env(&[])
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut raced = 0;
    // Start offsets of the second run, and latency added to every AWS call to widen the
    // window between a run's reads and its writes.
    let plans: Vec<(Duration, Duration)> = [0, 0, 0, 10, 30, 60, 100, 150]
        .into_iter()
        .flat_map(|ms| {
            [Duration::ZERO, Duration::from_millis(25)]
                .map(|delay| (Duration::from_millis(ms), delay))
        })
        .collect();
    for (offset, delay) in &plans {
        w.aws_proxy.set_delay(*delay);
        let outs = w
            .run_concurrently(&[
                ConcurrentRun {
                    command: "provision".into(),
                    extra: env.clone(),
                    start_after: Duration::ZERO,
                },
                ConcurrentRun {
                    command: "provision".into(),
                    extra: env.clone(),
                    start_after: *offset,
                },
            ])
            .await;
        w.aws_proxy.set_delay(Duration::ZERO);
        for out in &outs {
            out.assert_ok();
            assert!(
                !out.stderr.contains("ERROR"),
                "offset {offset:?}: {}",
                out.stderr
            );
        }
        assert_eq!(
            role_arns(&outs[0]),
            role_arns(&outs[1]),
            "both report the same roles"
        );
        assert_eq!(role_arns(&outs[0]).len(), 2);
        assert_same(
            &counted_from_roles(state(&w).await),
            &base.provisioned,
            &format!("two provisions, the second {offset:?} later, AWS latency {delay:?}"),
        );
        // Did the runs really collide (one's create answered "already exists")?
        if outs[0]
            .aws_calls
            .iter()
            .any(|c| c.op.starts_with("Create") && c.status == 409)
        {
            raced += 1;
        }
        w.run("teardown", &teardown_env(&[])).await.assert_ok();
        assert_same(&state(&w).await, &base.torn_down, "clean teardown");
    }
    println!(
        "{} pairs of concurrent provisions, {raced} with a create that collided, in {:?}",
        plans.len(),
        started.elapsed()
    );
    assert!(
        raced > 0,
        "no pair collided: the test does not exercise the race"
    );
}
