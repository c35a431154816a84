//! `txtfailover import`: `[[alias]]` blocks from what AWS already knows.
//! Each input is the JSON that `aws workspaces describe-connection-aliases
//! --region R` prints; a connection string created in several Regions
//! becomes one alias with a target per Region, the primary first. Pure: the
//! caller reads the files and prints the result.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::config;

/// One `--region R=FILE`: the Region and what the CLI printed for it.
pub struct Source {
    pub region: String,
    pub file: String,
    pub json: String,
}

/// The blocks to append to a configuration, and what the operator should
/// know about what was left out.
#[derive(Debug)]
pub struct Imported {
    pub config: String,
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    connection_aliases: Vec<Alias>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Alias {
    connection_string: String,
    #[serde(default)]
    alias_id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    associations: Vec<Association>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Association {
    #[serde(default)]
    association_status: String,
    #[serde(default)]
    connection_identifier: String,
    #[serde(default)]
    resource_id: String,
}

/// The association states in which the identifier routes users.
const ASSOCIATED: [&str; 2] = [
    "ASSOCIATED_WITH_OWNER_ACCOUNT",
    "ASSOCIATED_WITH_SHARED_ACCOUNT",
];

/// A Region's target for one connection string.
struct Target {
    region: String,
    connection_id: String,
    alias_id: String,
}

/// Builds the blocks; `primary` (else the first source) goes first in every
/// alias. Errors are about the inputs as a whole: unreadable JSON, a Region
/// given twice, nothing to import, or blocks that fail validation.
pub fn import(sources: &[Source], primary: Option<&str>) -> Result<Imported, String> {
    let mut order: Vec<&Source> = sources.iter().collect();
    if let Some(p) = primary {
        let at = order.iter().position(|s| s.region == p).ok_or_else(|| {
            format!("--primary {p} is not one of the Regions given with --region")
        })?;
        let first = order.remove(at);
        order.insert(0, first);
    }
    for (i, s) in order.iter().enumerate() {
        if !is_region(&s.region) {
            return Err(format!(
                "{:?} is not a Region name; write e.g. --region us-west-2=pdx.json",
                s.region
            ));
        }
        if order[..i].iter().any(|o| o.region == s.region) {
            return Err(format!(
                "Region {} is given twice; give each Region's output once",
                s.region
            ));
        }
    }
    let mut warnings = Vec::new();
    // Connection string (lowercase) -> targets in Region order.
    let mut aliases: BTreeMap<String, Vec<Target>> = BTreeMap::new();
    for source in &order {
        let output: Output = serde_json::from_str(&source.json).map_err(|e| {
            format!(
                "{}: not the JSON of `aws workspaces describe-connection-aliases --region {}` ({e})",
                source.file, source.region
            )
        })?;
        for alias in output.connection_aliases {
            let Some(t) = pick(source, &alias, &mut warnings) else {
                continue;
            };
            // Names differ only in case in DNS: one target per Region.
            let targets = aliases
                .entry(alias.connection_string.to_ascii_lowercase())
                .or_default();
            match targets.iter().find(|o| o.region == t.region) {
                Some(first) => warnings.push(format!(
                    "{} ({}, {}): {} already has a target in {} ({}, from {}): skipped",
                    alias.connection_string,
                    t.region,
                    t.alias_id,
                    alias.connection_string.to_ascii_lowercase(),
                    t.region,
                    first.connection_id,
                    first.alias_id
                )),
                None => targets.push(t),
            }
        }
    }
    if aliases.is_empty() {
        return Err(
            "no connection alias with a usable association in the given outputs; nothing to import"
                .into(),
        );
    }
    for (name, targets) in &aliases {
        if let [only] = targets.as_slice() {
            warnings.push(format!(
                "{name} is associated in {} only: no failover is possible until it is created and associated in another Region",
                only.region
            ));
        }
    }
    let config = render(&order, &aliases);
    validate(&config, &aliases)?;
    Ok(Imported { config, warnings })
}

/// The target one Region gives `alias`, or None with a warning saying why.
fn pick(source: &Source, alias: &Alias, warnings: &mut Vec<String>) -> Option<Target> {
    let at = format!(
        "{} ({}, {})",
        alias.connection_string.escape_debug(),
        source.region,
        printable(&alias.alias_id)
    );
    if !is_connection_string(&alias.connection_string) {
        warnings.push(format!(
            "{:?} ({}) is not a connection string (letters, digits, '.' and '-', up to 255): skipped",
            alias.connection_string, source.region
        ));
        return None;
    }
    if alias.state == "DELETING" {
        warnings.push(format!("{at} is being deleted: skipped"));
        return None;
    }
    let mut usable = Vec::new();
    for a in &alias.associations {
        if !ASSOCIATED.contains(&a.association_status.as_str()) {
            warnings.push(format!(
                "{at}: the association with {} is {}, not associated: skipped",
                printable(&a.resource_id),
                printable(&a.association_status)
            ));
        } else if !is_identifier(&a.connection_identifier) {
            warnings.push(format!(
                "{at}: connection identifier {:?} does not match ^[A-Za-z0-9]{{1,20}}$: skipped",
                a.connection_identifier
            ));
        } else {
            usable.push(a);
        }
    }
    // The owner account's association first: it is the alias's own.
    usable.sort_by_key(|a| a.association_status != ASSOCIATED[0]);
    let (chosen, rest) = usable.split_first()?;
    for other in rest {
        warnings.push(format!(
            "{at}: also associated with {} ({}); a Region has one target, {} is used",
            printable(&other.resource_id),
            other.connection_identifier,
            chosen.connection_identifier
        ));
    }
    Some(Target {
        region: source.region.clone(),
        connection_id: chosen.connection_identifier.clone(),
        alias_id: printable(&alias.alias_id),
    })
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "(not given)" } else { s }
}

/// An AWS name (alias id, directory id) as it can stand in a comment: the
/// input is not trusted to keep to the documented shape.
fn printable(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        or_unknown(s).to_string()
    } else {
        format!("{:?}", s)
    }
}

fn is_region(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_connection_string(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn is_identifier(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// TOML text: the suggested checks (commented), then one alias per
/// connection string.
fn render(order: &[&Source], aliases: &BTreeMap<String, Vec<Target>>) -> String {
    let mut out = String::from(
        "# Imported by `txtfailover import` from `aws workspaces describe-connection-aliases`:\n",
    );
    for (i, s) in order.iter().enumerate() {
        let role = if i == 0 { " (primary)" } else { "" };
        let _ = writeln!(out, "#   {}{role}: {}", s.region, s.file.escape_debug());
    }
    out.push_str(
        "# Append to the configuration; every alias name must lie in a [[zone]] it serves.\n\
         #\n\
         # Suggested checks per Region: uncomment the ones you use and list them in the\n\
         # targets' `checks`. Until a target has checks it counts as healthy, and the\n\
         # answer never leaves the primary.\n",
    );
    for s in order {
        let r = &s.region;
        let _ = write!(
            out,
            "#\n\
             # [[check]]\n\
             # name = \"{r}-broker\"      # the broker users connect to (WorkSpaces Connection Health Check)\n\
             # kind = \"https\"\n\
             # url = \"https://ws-broker-service.{r}.amazonaws.com/ping\"\n\
             # expect_body = \"healthy\"\n\
             #\n\
             # [[check]]\n\
             # name = \"{r}-gateway\"     # the streaming gateway: 4172 PCoIP, 4195 DCV\n\
             # kind = \"tcp\"\n\
             # address = \"drp-<code>.amazonworkspaces.com:4172\"   # <code>: see the Region's IP address and port requirements\n\
             #\n\
             # [[check]]\n\
             # name = \"{r}-alarm\"       # a CloudWatch alarm on AWS/WorkSpaces metrics (README: Recommended alarms)\n\
             # kind = \"cloudwatch_alarm\"\n\
             # alarm_name = \"workspaces-{r}-down\"\n\
             # region = \"{r}\"\n"
        );
    }
    for (name, targets) in aliases {
        let ids: Vec<String> = targets
            .iter()
            .map(|t| format!("{} in {}", t.alias_id, t.region))
            .collect();
        let _ = write!(
            out,
            "\n[[alias]]\n# {}\nname = \"{name}\"\ntargets = [\n",
            ids.join(", ")
        );
        for t in targets {
            let _ = writeln!(
                out,
                "  {{ region = \"{}\", connection_id = \"{}\" }},   # checks = [\"{}-broker\"]",
                t.region, t.connection_id, t.region
            );
        }
        out.push_str("]\n");
    }
    out
}

/// Runs the blocks through the configuration's own validation, each alias
/// in a zone of its parent name, so what `import` prints is what `check`
/// accepts.
fn validate(blocks: &str, aliases: &BTreeMap<String, Vec<Target>>) -> Result<(), String> {
    let mut zones: Vec<&str> = Vec::new();
    for name in aliases.keys() {
        let Some((_, parent)) = name.split_once('.') else {
            return Err(format!(
                "connection string {name:?} is a single label: it cannot be an alias in a zone"
            ));
        };
        if !zones.contains(&parent) {
            zones.push(parent);
        }
    }
    // A zone inside another one is not needed: its aliases are in both.
    let outer: Vec<&str> = zones
        .iter()
        .copied()
        .filter(|z| {
            !zones
                .iter()
                .any(|o| o != z && z.ends_with(&format!(".{o}")))
        })
        .collect();
    let mut text = String::new();
    for z in &outer {
        let _ = write!(text, "[[zone]]\norigin = \"{z}\"\nfile = \"{z}.zone\"\n\n");
    }
    text.push_str(blocks);
    let zone = "$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n";
    let read = |_: &Path| Ok(zone.to_string());
    config::validate(Path::new("import.toml"), &text, &read)
        .map(|_| ())
        .map_err(|e| format!("the imported blocks do not validate:\n{e}"))
}

#[cfg(test)]
mod tests;
