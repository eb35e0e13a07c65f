//! Interrupting `imagetool build` (issue 14): SIGINT, SIGTERM and SIGKILL delivered while the
//! closure is read, while ext4 is written and while the container is written leave nothing in
//! the output directory or `$TMPDIR` (and the planted symlinks' victim unchanged); SIGINT and
//! SIGTERM end with status 130 and say nothing was written.
//!
//! The build reports each phase's start on stdout (`--progress json`); the test freezes it
//! (SIGSTOP) as soon as the phase it aims at has started, queues the signal, and lets it run
//! (SIGCONT), so the signal lands in that phase however fast the machine is.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use imagetool_testutil::hostile::Sandbox;
use rustix::process::{Pid, Signal, kill_process};

const OUT: &str = "nixos.qcow2";

fn interrupt(fx: &imagetool_fixture::Fixture, phase: &str, sig: Signal) -> Result<(), String> {
    let sb = Sandbox::new(OUT);
    let mut child = Command::new(env!("CARGO_BIN_EXE_imagetool"))
        .args(["build", "--toplevel", &fx.toplevel, "--closure-info"])
        .arg(&fx.dir)
        .arg("--store-root")
        .arg(&fx.store_root)
        .args(["--partition", "efi", "--format", "qcow2-compressed"])
        .args(["--verify-closure", "--progress", "json", "--output"])
        .arg(sb.out_dir.join(OUT))
        .env("TMPDIR", &sb.tmpdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = Pid::from_child(&child);
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let want = format!("{{\"event\":\"started\",\"phase\":\"{phase}\"}}");
    let mut seen = Vec::new();
    loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            return Err(format!("the build ended before {phase} started: {seen:?}"));
        };
        let line = line.map_err(|e| e.to_string())?;
        let hit = line == want;
        seen.push(line);
        if hit {
            break;
        }
    }
    kill_process(pid, Signal::STOP).map_err(|e| e.to_string())?;
    kill_process(pid, sig).map_err(|e| e.to_string())?;
    kill_process(pid, Signal::CONT).map_err(|e| e.to_string())?;
    // Drain stdout so the build never blocks on a full pipe.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let mut why = Vec::new();
    if sig == Signal::KILL {
        if status.code().is_some() {
            why.push(format!("expected death by SIGKILL, got {status:?}"));
        }
    } else {
        if status.code() != Some(130) {
            why.push(format!("exit {status:?}, expected 130"));
        }
        if !err.contains("interrupted: nothing was written") || err.contains("panicked") {
            why.push("no clean interruption message".into());
        }
        if rest.iter().any(|l| l.contains("\"event\":\"done\"")) {
            why.push("the build reported success".into());
        }
    }
    let left = sb.leftovers(&[]);
    if !left.is_empty() {
        why.push(format!("left behind: {left:?}"));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nstdout after the signal: {rest:?}\nstderr:\n{err}",
            why.join("; ")
        ))
    }
}

#[test]
fn test_signals_at_every_phase_leave_nothing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let mut failures = Vec::new();
    for phase in ["closure", "write", "convert"] {
        for sig in [Signal::INT, Signal::TERM, Signal::KILL] {
            if let Err(e) = interrupt(&fx, phase, sig) {
                failures.push(format!("[{sig:?} during {phase}] {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
