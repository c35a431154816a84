//! The deployment guide's configuration blocks must work as written: every
//! fenced block whose first line names a file is written out, then the
//! txtfailover configs are run through `txtfailover check`, Knot's through
//! `knotc conf-check` and NSD's through `nsd-checkconf`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{bin, named_blocks};

/// The program at /usr/sbin (daemons' tools), else by PATH.
fn sbin(program: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(program);
    if p.exists() {
        p
    } else {
        PathBuf::from(program)
    }
}

fn run(program: PathBuf, args: &[&str]) -> (bool, String) {
    let out = Command::new(&program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn every_named_block_in_the_deployment_guide_is_valid() {
    let blocks = named_blocks();
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "primary.toml",
        "secondary.toml",
        "hidden-primary.toml",
        "keys/xfr.key",
        "zones/example.com.zone",
        "zones/ws.example.com.zone",
        "knot.conf",
        "nsd.conf",
    ] {
        assert!(
            names.contains(&want),
            "README lost its {want} block: {names:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &blocks {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    for (name, _) in &blocks {
        let path = dir.path().join(name);
        let p = path.to_str().unwrap();
        let (ok, out) = match name.as_str() {
            n if n.ends_with(".toml") => run(PathBuf::from(bin()), &["check", "--config", p]),
            "knot.conf" => run(sbin("knotc"), &["-c", p, "conf-check"]),
            "nsd.conf" => run(sbin("nsd-checkconf"), &[p]),
            _ => continue,
        };
        assert!(ok, "{name} from README.md does not pass:\n{out}");
    }
}
