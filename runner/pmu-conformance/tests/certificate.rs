//! `pmu-conformance certify`: a faithful model machine is certified, Xen's
//! model and a machine with no PMU are not, and `--strict` refuses a case a
//! vPMU left unsupported but excuses one the CPU's class lacks. The
//! certificate's Markdown and HTML carry what a bug report needs.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
    command.env_remove("CI");
    command
}

/// Runs `certify ARGS --out DIR`; returns the exit code and the two files.
fn certify(args: &[&str], dir: &Path) -> (i32, String, String, String) {
    let output = bin().arg("certify").args(args).arg("--out").arg(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let md = std::fs::read_to_string(dir.join("certificate.md")).unwrap_or_default();
    let html = std::fs::read_to_string(dir.join("certificate.html")).unwrap_or_default();
    (output.status.code().expect("exited"), stdout, md, html)
}

#[test]
fn a_faithful_machine_is_certified_with_everything_a_bug_report_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, md, html) = certify(&["--env", "sim:ideal"], dir.path());
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("certified: sim:ideal"), "{stdout}");
    assert!(
        md.starts_with("# PMU conformance certificate: sim:ideal\n\n**CERTIFIED"),
        "{md}"
    );
    for row in [
        "| date | 20",
        "| host | ",
        "| tool | pmu-conformance ",
        "| command | `",
        "certify --env sim:ideal",
    ] {
        assert!(md.contains(row), "no `{row}`:\n{md}");
    }
    for section in [
        "## Fingerprint",
        "### Counts are exact",
        "### Every overflow interrupt is delivered, on time",
        "### Counts stay exact across overflow",
        "### Overflow status is set and acknowledged correctly",
        "## Every case",
        "## Skid",
    ] {
        assert!(md.contains(section), "no `{section}`");
    }
    assert!(md.contains("rate < "), "each pass states its bound: {md}");
    // The HTML page: self-contained, with the skid drawn.
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "self-contained"
    );
    assert!(html.contains("<p id=\"decision\" class=\"certified\">"), "{html}");
    assert!(html.matches("<svg").count() >= 3, "a skid chart per PMI-delivery case");
    let report_cases = html.matches("<tr><td>").count();
    assert_eq!(report_cases, 46, "a row per case");
}

#[test]
fn failures_and_a_missing_pmu_are_not_certified() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, md, html) = certify(&["--env", "sim:xen-intel"], dir.path());
    assert_eq!(code, 101, "{stdout}");
    assert!(stdout.contains("not certified: sim:xen-intel"), "{stdout}");
    assert!(md.contains("**NOT CERTIFIED: sim:xen-intel**"), "{md}");
    assert!(md.contains("overflow/rr-xen-probe fail: overcount"), "{md}");
    // The known bug the failures match, explained.
    assert!(md.contains("matches xen-pmc-quirk"), "{md}");
    assert!(html.contains("class=\"not-certified\""));

    let (code, stdout, _, _) = certify(&["--env", "sim:xen-vpmu-off"], dir.path());
    assert_eq!(code, 101, "a machine with no PMU is never certified: {stdout}");
    assert!(stdout.contains("no PMU case passed"), "{stdout}");
}

#[test]
fn strict_refuses_a_vpmu_that_is_off_but_excuses_a_missing_feature() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ideal.json");
    let output = bin()
        .args(["--env", "sim:ideal", "-q", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = std::fs::read_to_string(&json).unwrap();
    // One case left unsupported, by a refusal and then by a missing feature.
    let unsupported = |code: &str| {
        let mut report: serde_json::Value = serde_json::from_str(&text).unwrap();
        let case = &mut report["cases"][0];
        case["verdict"] = "unsupported".into();
        case["reason"] = serde_json::json!({"code": code, "message": format!("a {code} reason")});
        report["summary"]["pass"] = 45.into();
        report["summary"]["unsupported"] = 1.into();
        let path = dir.path().join(format!("{code}.json"));
        std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
        path.to_string_lossy().into_owned()
    };
    let refused = unsupported("control-refused");
    let lacking = unsupported("pmu-version");
    assert_eq!(certify(&["--from", &refused], dir.path()).0, 0, "not strict: excused");
    let (code, stdout, _, _) = certify(&["--strict", "--from", &refused], dir.path());
    assert_eq!(code, 101, "{stdout}");
    assert!(
        stdout.contains("is unsupported here: a control-refused reason"),
        "{stdout}"
    );
    assert_eq!(certify(&["--strict", "--from", &lacking], dir.path()).0, 0);

    let (code, _, _, _) = certify(&["--from", "/nonexistent.json"], dir.path());
    assert_eq!(code, 2);
}

/// The browser the HTML test renders with: `$PMUC_CHROMIUM`, else Debian's
/// `chromium` (`cargo xtask test` installs it).
fn chromium() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PMUC_CHROMIUM") {
        return path.into();
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("no chromium: install Debian's chromium (`cargo xtask test` does) or set PMUC_CHROMIUM")
        })
}

/// Headless Chromium, as root needs it, with its own throwaway profile.
fn headless(profile: &Path) -> Command {
    let mut command = Command::new(chromium());
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

#[test]
fn the_html_certificate_renders_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _, _) = certify(&["--env", "sim:xen-intel"], dir.path());
    assert_eq!(code, 101, "{stdout}");
    let page = format!("file://{}", dir.path().join("certificate.html").display());
    let profile = dir.path().join("profile");

    // The DOM as Chromium built it: the decision, a row per case, the charts.
    let dom = headless(&profile).arg("--dump-dom").arg(&page).output().unwrap();
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<p id=\"decision\" class=\"not-certified\"><strong>NOT CERTIFIED: sim:xen-intel</strong></p>"),
        "{dom}"
    );
    assert_eq!(dom.matches("<tr><td>").count(), 46);
    assert!(
        dom.matches("<svg").count() >= 3,
        "the skid charts are in the rendered page"
    );
    assert!(dom.contains("matches xen-pmc-quirk"));

    // A screenshot: a PNG of the window's size with something drawn in it.
    let shot = dir.path().join("certificate.png");
    let taken = headless(&profile)
        .args(["--window-size=1200,1800", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&page)
        .output()
        .unwrap();
    assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
    let png = std::fs::read(&shot).expect("Chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 1800));
    assert!(
        png.len() > 20_000,
        "a blank page compresses to almost nothing: {} bytes",
        png.len()
    );
}
