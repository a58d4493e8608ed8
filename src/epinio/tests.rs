use super::*;

#[test]
fn table_is_contiguous_and_covers_every_version() {
    for pair in TABLE.windows(2) {
        assert_eq!(
            pair[0].until,
            Some(pair[1].from),
            "{} / {}",
            pair[0].label,
            pair[1].label
        );
    }
    assert_eq!(TABLE[0].from, (0, 0, 0));
    assert_eq!(TABLE.last().unwrap().until, None);
    for (v, label) in [
        ("v1.5.9", "< 1.6.0"),
        ("v1.6.0", "1.6.x"),
        ("1.11.3", "1.7.0 - 1.11.x"),
        ("v1.12.0", "1.12.x"),
        ("v1.13.9", "1.13.0 - 1.13.9"),
        ("v1.13.10-rc2", ">= 1.13.10 (all of 1.14.x)"),
        ("1.14.0-rc3", ">= 1.13.10 (all of 1.14.x)"),
        ("v1.14.1", ">= 1.13.10 (all of 1.14.x)"),
    ] {
        assert_eq!(row(&parse_version(v).unwrap()).label, label, "{v}");
    }
}

fn objects(image: &str) -> EpinioObjects {
    EpinioObjects {
        image: Some(image.into()),
        service_account: Some("epinio-server".into()),
        ..EpinioObjects::default()
    }
}

#[test]
fn version_from_tag_then_labels_and_unknown_otherwise() {
    let mut o = objects("ghcr.io/epinio/epinio-server:v1.13.9");
    assert!(
        matches!(server_version(&o), ServerVersion::Known { ref version, from: "image tag" } if version.to_string() == "1.13.9")
    );
    o.labels
        .insert("helm.sh/chart".into(), "epinio-1.12.0".into());
    o.image = Some("registry:5000/epinio/epinio-server@sha256:abcd".into());
    assert!(
        matches!(server_version(&o), ServerVersion::Unknown { chart: Some(ref c), .. } if c.to_string() == "1.12.0")
    );
    o.image = Some("ghcr.io/epinio/epinio-server:my-fork".into());
    assert!(matches!(server_version(&o), ServerVersion::Unknown { .. }));
    // A registry port is not a tag: the labels tell.
    o.image = Some("registry:5000/epinio-server".into());
    assert!(matches!(
        server_version(&o),
        ServerVersion::Known {
            from: "label helm.sh/chart",
            ..
        }
    ));
    o.labels
        .insert("app.kubernetes.io/version".into(), "v1.13.2".into());
    assert!(
        matches!(server_version(&o), ServerVersion::Known { ref version, .. } if version.to_string() == "1.13.2")
    );
}

#[test]
fn pod_identity_needs_a_new_server_and_a_new_aws_cli_for_staging() {
    let mut o = objects("ghcr.io/epinio/epinio-server:v1.13.9");
    let why = supports_pod_identity(Some(&o)).unwrap_err();
    assert!(why.contains("image.awscli.tag"), "{why}");
    o.download_image = Some("amazon/aws-cli:2.13.26".into());
    let why = supports_pod_identity(Some(&o)).unwrap_err();
    assert!(
        why.contains("amazon/aws-cli:2.13.26") && why.contains("2.15.0"),
        "{why}"
    );
    o.download_image = Some("registry:5000/amazon/aws-cli:2.15.0".into());
    assert_eq!(supports_pod_identity(Some(&o)), Ok(()));
    // minio-go before 7.0.69 has no container credentials; 1.13.10+ sends unsigned requests.
    for old in ["v1.11.0", "v1.13.10"] {
        o.image = Some(format!("ghcr.io/epinio/epinio-server:{old}"));
        let why = supports_pod_identity(Some(&o)).unwrap_err();
        assert!(
            why.contains("server cannot use Pod Identity"),
            "{old}: {why}"
        );
    }
    assert!(supports_pod_identity(None).is_err());
}
