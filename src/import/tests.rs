//! `import` on outputs in the shape the AWS CLI prints them.

use super::*;

fn output(aliases: &str) -> String {
    format!("{{\n  \"ConnectionAliases\": [{aliases}]\n}}\n")
}

fn alias(string: &str, id: &str, associations: &str) -> String {
    format!(
        r#"{{
      "ConnectionString": "{string}",
      "AliasId": "{id}",
      "State": "CREATED",
      "OwnerAccountId": "123456789012",
      "Associations": [{associations}]
    }}"#
    )
}

fn association(status: &str, identifier: &str) -> String {
    format!(
        r#"{{
          "AssociationStatus": "{status}",
          "AssociatedAccountId": "123456789012",
          "ResourceId": "d-9067a1b2c3",
          "ConnectionIdentifier": "{identifier}"
        }}"#
    )
}

fn source(region: &str, json: String) -> Source {
    Source {
        region: region.into(),
        file: format!("{region}.json"),
        json,
    }
}

const OWNER: &str = "ASSOCIATED_WITH_OWNER_ACCOUNT";

fn two_regions() -> Vec<Source> {
    vec![
        source(
            "us-east-1",
            output(&alias(
                "Desktop.example.com",
                "wsca-iad",
                &association(OWNER, "IADconn0001"),
            )),
        ),
        source(
            "us-west-2",
            output(&alias(
                "desktop.example.com",
                "wsca-pdx",
                &association(OWNER, "PDXconn0001"),
            )),
        ),
    ]
}

#[test]
fn one_alias_per_connection_string_with_the_primary_first() {
    let got = import(&two_regions(), Some("us-west-2")).unwrap();
    assert!(got.warnings.is_empty(), "{:?}", got.warnings);
    let c = &got.config;
    let pdx = c.find("connection_id = \"PDXconn0001\"").unwrap();
    let iad = c.find("connection_id = \"IADconn0001\"").unwrap();
    assert!(pdx < iad, "primary first:\n{c}");
    assert_eq!(c.matches("[[alias]]").count(), 1, "{c}");
    assert!(c.contains("name = \"desktop.example.com\""), "{c}");
    assert!(
        c.contains("# wsca-pdx in us-west-2, wsca-iad in us-east-1"),
        "{c}"
    );
    // Without --primary, the first Region given leads.
    let got = import(&two_regions(), None).unwrap();
    let c = &got.config;
    assert!(c.find("IADconn0001").unwrap() < c.find("PDXconn0001").unwrap());
}

#[test]
fn suggested_checks_are_commented_and_name_each_region() {
    let c = import(&two_regions(), None).unwrap().config;
    for r in ["us-east-1", "us-west-2"] {
        assert!(
            c.contains(&format!(
                "# url = \"https://ws-broker-service.{r}.amazonaws.com/ping\""
            )),
            "{c}"
        );
        assert!(c.contains(&format!("# name = \"{r}-gateway\"")), "{c}");
        assert!(c.contains(&format!("# region = \"{r}\"")), "{c}");
        assert!(c.contains("# kind = \"cloudwatch_alarm\""), "{c}");
    }
    assert!(
        !c.lines().any(|l| l.starts_with("[[check]]")),
        "suggestions stay comments: {c}"
    );
}

#[test]
fn unusable_associations_are_skipped_and_said() {
    let sources = vec![
        source(
            "us-west-2",
            output(&format!(
                "{},{}",
                alias(
                    "desktop.example.com",
                    "wsca-pdx",
                    &[
                        association("PENDING_ASSOCIATION", "PDXpending1"),
                        association(OWNER, "PDXconn0001"),
                    ]
                    .join(",")
                ),
                alias(
                    "lab.example.com",
                    "wsca-lab",
                    &association(OWNER, "bad-identifier!")
                )
            )),
        ),
        source(
            "us-east-1",
            output(&alias(
                "desktop.example.com",
                "wsca-iad",
                &[
                    association("ASSOCIATED_WITH_SHARED_ACCOUNT", "IADshared01"),
                    association(OWNER, "IADconn0001"),
                ]
                .join(","),
            )),
        ),
    ];
    let got = import(&sources, None).unwrap();
    let w = got.warnings.join("\n");
    assert!(
        w.contains("PENDING_ASSOCIATION, not associated: skipped"),
        "{w}"
    );
    assert!(w.contains("\"bad-identifier!\" does not match"), "{w}");
    // The owner's association wins over a shared account's, and says so.
    assert!(
        w.contains("also associated with d-9067a1b2c3 (IADshared01)")
            && w.contains("IADconn0001 is used"),
        "{w}"
    );
    assert!(got.config.contains("IADconn0001") && !got.config.contains("IADshared01"));
    assert!(!got.config.contains("lab.example.com"), "{}", got.config);
}

#[test]
fn a_connection_string_in_one_region_warns_that_it_cannot_fail_over() {
    let sources = vec![
        source(
            "us-west-2",
            output(&alias(
                "solo.example.com",
                "wsca-1",
                &association(OWNER, "PDXsolo01"),
            )),
        ),
        source("us-east-1", output("")),
    ];
    let got = import(&sources, None).unwrap();
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("solo.example.com is associated in us-west-2 only: no failover")),
        "{:?}",
        got.warnings
    );
    assert!(got.config.contains("PDXsolo01"));
}

#[test]
fn input_mistakes_are_errors_that_say_what_to_give() {
    let mut twice = two_regions();
    twice[1].region = "us-east-1".into();
    assert!(
        import(&twice, None)
            .unwrap_err()
            .contains("Region us-east-1 is given twice")
    );
    assert!(
        import(&two_regions(), Some("eu-west-1"))
            .unwrap_err()
            .contains("--primary eu-west-1 is not one of the Regions")
    );
    let garbage = vec![source("us-west-2", "{\"Aliases\": []}".into())];
    let e = import(&garbage, None).unwrap_err();
    assert!(e.contains("us-west-2.json: not the JSON of `aws workspaces describe-connection-aliases --region us-west-2`"), "{e}");
    let empty = vec![source("us-west-2", output(""))];
    assert!(
        import(&empty, None)
            .unwrap_err()
            .contains("nothing to import")
    );
    // What the config cannot hold is refused with the validator's words.
    let bad = vec![source(
        "us-west-2",
        output(&alias(
            &format!("{}.example.com", "a".repeat(64)),
            "wsca-1",
            &association(OWNER, "PDX1"),
        )),
    )];
    let e = import(&bad, None).unwrap_err();
    assert!(e.contains("do not validate"), "{e}");
}

#[test]
fn hostile_strings_cannot_write_configuration() {
    let sources = vec![
        source(
            "us-west-2",
            output(&format!(
                "{},{}",
                alias(
                    "a.example.com\\\"\\nttl = 1\\n#",
                    "wsca-1",
                    &association(OWNER, "PDX1")
                ),
                alias(
                    "desktop.example.com",
                    "wsca-2\\n[server]",
                    &association(OWNER, "PDX2")
                )
            )),
        ),
        source(
            "us-east-1",
            output(&alias(
                "desktop.example.com",
                "wsca-3",
                &association(OWNER, "IAD2"),
            )),
        ),
    ];
    let got = import(&sources, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(!got.config.contains("ttl = 1"), "{}", got.config);
    assert!(!got.config.contains("\n[server]"), "{}", got.config);
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("is not a connection string")),
        "{:?}",
        got.warnings
    );
    assert!(
        import(&[source("us-west-2\n[x]", output(""))], None)
            .unwrap_err()
            .contains("is not a Region name")
    );
}

#[test]
fn a_connection_string_twice_in_one_region_keeps_the_first_and_warns() {
    // Case-only duplicates are one DNS name: a second target in the same
    // Region would make the whole output fail validation.
    let sources = vec![
        source(
            "us-west-2",
            output(&format!(
                "{},{}",
                alias("Desktop.example.com", "wsca-a", &association(OWNER, "PDXa")),
                alias("desktop.example.com", "wsca-b", &association(OWNER, "PDXb"))
            )),
        ),
        source(
            "us-east-1",
            output(&alias(
                "desktop.example.com",
                "wsca-c",
                &association(OWNER, "IADc"),
            )),
        ),
    ];
    let got = import(&sources, Some("us-west-2")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        got.config.contains("connection_id = \"PDXa\""),
        "{}",
        got.config
    );
    assert!(!got.config.contains("PDXb"), "{}", got.config);
    assert!(
        got.config.contains("connection_id = \"IADc\""),
        "{}",
        got.config
    );
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("wsca-b") && w.contains("already has a target")),
        "{:?}",
        got.warnings
    );
}
