//! The moto launcher: a private moto per test, EKS clusters with an OIDC
//! issuer, reset, and a process that goes away with the handle.

use testkit::moto::{create_eks_cluster, test_env, Moto};

#[tokio::test]
async fn moto_serves_eks_clusters_resets_and_stops_on_drop() {
    let moto = Moto::start().await;
    let (arn, issuer) = create_eks_cluster(&moto, "epinio").await;
    assert_eq!(arn, "arn:aws:eks:us-east-1:123456789012:cluster/epinio");
    assert!(
        issuer.starts_with("https://oidc.eks.us-east-1.amazonaws.com/id/"),
        "{issuer}"
    );

    // Creating the same cluster twice is a conflict, unless moto forgot it.
    moto.reset().await;
    let (again, _) = create_eks_cluster(&moto, "epinio").await;
    assert_eq!(again, arn);

    let env = test_env(&moto);
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("AWS_ENDPOINT_URL"), Some(moto.endpoint().as_str()));
    assert_eq!(get("AWS_REGION"), Some("us-east-1"));
    assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("testing"));
    assert_eq!(get("AWS_SHARED_CREDENTIALS_FILE"), Some("/dev/null"));

    let addr = moto.endpoint().trim_start_matches("http://").to_owned();
    drop(moto);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "moto still listens on {addr} after drop"
    );
}
