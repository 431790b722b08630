//! `duet completions` and `duet man`: the real binary prints generated
//! text to stdout and exits 0, without a network or a terminal.

mod common;

use common::Duet;

/// Runs duet with `args` and returns its stdout, checking exit 0 and a
/// quiet stderr.
fn printed(args: &[&str]) -> String {
    let mut d = Duet::spawn(args);
    d.close_stdin();
    let out = d.rest().join("\n");
    if d.code() != 0 {
        d.fail("exit status");
    }
    if !d.stderr().is_empty() {
        d.fail("wrote to stderr");
    }
    if out.trim().is_empty() {
        d.fail("printed nothing");
    }
    out
}

#[test]
fn completion_scripts_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = printed(&["completions", shell]);
        for sub in ["server", "client", "bench", "completions", "man"] {
            assert!(script.contains(sub), "{shell}: no {sub} in\n{script}");
        }
        // And the options of the subcommands.
        assert!(script.contains("connect-timeout"), "{shell}");
        assert!(script.contains("jsonl"), "{shell}");
    }
    assert!(printed(&["completions", "bash"]).contains("complete -F _duet"));
    assert!(printed(&["completions", "zsh"]).starts_with("#compdef duet"));
    assert!(printed(&["completions", "fish"]).contains("complete -c duet"));
}

#[test]
fn the_manual_page_is_roff_and_names_the_subcommands() {
    let page = printed(&["man"]);
    assert!(page.contains(".TH duet 1"), "{page}");
    assert!(page.contains(".SH SYNOPSIS"), "{page}");
    for sub in ["server", "client", "bench"] {
        assert!(
            page.contains(&format!("duet\\-{sub}(1)")),
            "no {sub} in\n{page}"
        );
        let sub_page = printed(&["man", sub]);
        assert!(
            sub_page.contains(&format!(".TH duet-{sub} 1")),
            "{sub}:\n{sub_page}"
        );
    }
    assert!(printed(&["man", "client"]).contains("connect\\-timeout"));
}

#[test]
fn no_shell_or_an_unknown_one_is_a_usage_error() {
    for args in [
        &["completions"][..],
        &["completions", "tcsh"],
        &["man", "nope"],
    ] {
        let mut d = Duet::spawn(args);
        d.close_stdin();
        assert!(d.rest().is_empty(), "{args:?}");
        if d.code() != 2 || !d.stderr().starts_with("duet: ") {
            d.fail("want a one-line usage error, status 2");
        }
    }
}
