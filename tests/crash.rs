//! Crash anywhere: the job is stopped after its k-th write (the proxies let exactly k writes
//! through, then reset every later write, so from the outside it is as if the process died
//! there), for every k from 0 to the number of writes of a clean run. A second, fault-free
//! run must then end in exactly the state of a clean run: no duplicate, orphaned or
//! half-made role, policy, policy version, attachment, provider, annotation or
//! ServiceAccount. Same for teardown, and for a teardown that follows a crashed provision
//! (an install that died, then uninstalled).

mod reliability;

use std::time::Instant;

use reliability::{assert_same, baseline, provision_env, state, teardown_env, Baseline, BIN};
use testkit::proxy::Call;
use testkit::world::{RunOutput, World};

/// The crashed run gives up at the first refused write instead of retrying it.
const ONE_ATTEMPT: (&str, &str) = ("EPINIO_IRSA_MAX_ATTEMPTS", "1");

fn writes(calls: &[Call], aws: bool) -> usize {
    calls
        .iter()
        .filter(|c| c.is_write && c.is_aws() == aws)
        .count()
}

fn successful_writes(out: &RunOutput) -> usize {
    out.aws_calls
        .iter()
        .chain(&out.kube_calls)
        .filter(|c| c.is_write && c.is_success())
        .count()
}

/// Run `command` with at most `aws` AWS writes and `kube` Kubernetes writes let through.
async fn crashed(w: &World, command: &str, aws: usize, kube: usize) -> RunOutput {
    w.aws_proxy.crash_after_writes(Some(aws));
    w.kube_proxy.crash_after_writes(Some(kube));
    let env = if command == "provision" {
        provision_env(&[ONE_ATTEMPT])
    } else {
        teardown_env(&[ONE_ATTEMPT])
    };
    let out = w.run(command, &env).await;
    w.aws_proxy.crash_after_writes(None);
    w.kube_proxy.crash_after_writes(None);
    out
}

/// Crash points of a provision: its Kubernetes writes start only once every AWS write is
/// done, so the k-th write is the k-th AWS write, then the (k - AWS writes)-th Kubernetes one.
fn provision_points(base: &Baseline) -> Vec<(usize, usize)> {
    let aws = writes(&base.provision_calls, true);
    let kube = writes(&base.provision_calls, false);
    (0..=aws + kube)
        .map(|k| if k <= aws { (k, 0) } else { (aws, k - aws) })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_stopped_after_any_write_converges_on_the_next_run() {
    let started = Instant::now();
    let w = World::new(BIN).await;
    let base = baseline(&w).await;
    let points = provision_points(&base);
    let total = points.len() - 1;
    assert!(
        total >= 8,
        "a clean provision writes at least 8 times: {total}"
    );
    for (k, &(aws, kube)) in points.iter().enumerate() {
        // Crash, then provision again: the clean provisioned state.
        let out = crashed(&w, "provision", aws, kube).await;
        assert_eq!(
            successful_writes(&out),
            k,
            "crash point {k}: writes let through"
        );
        assert_eq!(out.success(), k == total, "crash point {k}: {}", out.stderr);
        let again = w.run("provision", &provision_env(&[])).await;
        again.assert_ok();
        assert_same(
            &state(&w).await,
            &base.provisioned,
            &format!("provision crashed after write {k}, then provision"),
        );
        w.run("teardown", &teardown_env(&[])).await.assert_ok();
        assert_same(
            &state(&w).await,
            &base.torn_down,
            &format!("provision crashed after write {k}, provision, teardown"),
        );

        // Crash, then uninstall: nothing of ours is left behind.
        let out = crashed(&w, "provision", aws, kube).await;
        assert_eq!(successful_writes(&out), k);
        w.run("teardown", &teardown_env(&[])).await.assert_ok();
        assert_same(
            &state(&w).await,
            &base.torn_down,
            &format!("provision crashed after write {k}, then teardown"),
        );
    }
    println!(
        "provision: {} crash points (0..={total} writes), each followed by a provision and by a teardown, in {:?}",
        points.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_stopped_after_any_write_converges_on_the_next_run() {
    let started = Instant::now();
    let w = World::new(BIN).await;
    let base = baseline(&w).await;
    let aws = writes(&base.teardown_calls, true);
    let kube = writes(&base.teardown_calls, false);
    assert!(
        aws >= 6 && kube >= 2,
        "{aws} AWS and {kube} Kubernetes writes"
    );
    // The AWS and Kubernetes branches of a teardown run side by side, so after k writes any
    // split of k between them is possible: every split is a crash point.
    let mut points = 0;
    for a in 0..=aws {
        for b in 0..=kube {
            w.run("provision", &provision_env(&[])).await.assert_ok();
            assert_same(&state(&w).await, &base.provisioned, "clean provision");
            let out = crashed(&w, "teardown", a, b).await;
            assert_eq!(successful_writes(&out), a + b, "crash point ({a}, {b})");
            assert_eq!(
                out.success(),
                a == aws && b == kube,
                "({a}, {b}): {}",
                out.stderr
            );
            w.run("teardown", &teardown_env(&[])).await.assert_ok();
            assert_same(
                &state(&w).await,
                &base.torn_down,
                &format!("teardown crashed after {a} AWS and {b} Kubernetes writes, then teardown"),
            );
            points += 1;
        }
    }
    println!(
        "teardown: {points} crash points ({aws} AWS x {kube} Kubernetes writes, every split of 0..={} writes), in {:?}",
        aws + kube,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_update_stopped_after_any_write_converges_on_the_next_run() {
    // A bucket change publishes a new policy version and records it in the policy's tags;
    // a changed trust policy is repaired in place. Stop between any two of those writes.
    let w = World::new(BIN).await;
    let base = baseline(&w).await;
    let bucket = ("EPINIO_IRSA_S3_BUCKET", "epinio-moved");
    let drift = |w: &World| {
        let iam = w.iam.clone();
        let role = base.provisioned.iam["roles"]
            .as_object()
            .and_then(|r| r.keys().find(|k| k.ends_with("-server")).cloned())
            .expect("server role");
        async move {
            iam.update_assume_role_policy()
                .role_name(role)
                .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
                .send()
                .await
                .expect("drift the trust policy");
        }
    };
    // The clean update, for comparison.
    w.run("provision", &provision_env(&[])).await.assert_ok();
    drift(&w).await;
    let clean = w.run("provision", &provision_env(&[bucket])).await;
    clean.assert_ok();
    let updated = state(&w).await;
    let total = clean.aws_writes().len() + clean.kube_writes().len();
    assert!(
        clean
            .aws_writes()
            .iter()
            .any(|c| c.op == "CreatePolicyVersion")
            && clean.aws_writes().iter().any(|c| c.op == "TagPolicy")
            && clean
                .aws_writes()
                .iter()
                .any(|c| c.op == "UpdateAssumeRolePolicy"),
        "{:?}",
        clean.aws_writes()
    );
    w.run("teardown", &teardown_env(&[])).await.assert_ok();
    assert_same(&state(&w).await, &base.torn_down, "clean teardown");

    // Here AWS writes run side by side and Kubernetes has nothing to change: k AWS writes.
    for k in 0..=total {
        w.run("provision", &provision_env(&[])).await.assert_ok();
        drift(&w).await;
        w.aws_proxy.crash_after_writes(Some(k));
        w.kube_proxy.crash_after_writes(Some(0));
        let out = w
            .run("provision", &provision_env(&[bucket, ONE_ATTEMPT]))
            .await;
        w.aws_proxy.crash_after_writes(None);
        w.kube_proxy.crash_after_writes(None);
        assert_eq!(successful_writes(&out), k, "crash point {k}");
        w.run("provision", &provision_env(&[bucket]))
            .await
            .assert_ok();
        assert_same(
            &state(&w).await,
            &updated,
            &format!("update crashed after write {k}, then provision"),
        );
        w.run("teardown", &teardown_env(&[])).await.assert_ok();
        assert_same(&state(&w).await, &base.torn_down, "teardown");
    }
    println!(
        "policy and trust update: {} crash points (0..={total} writes)",
        total + 1
    );
}
