//! `airlock demo`.

use super::*;

#[derive(Args, Debug)]
pub(super) struct DemoArgs {
    /// Working directory for the demo (default: a new directory under the system temp dir).
    pub(super) dir: Option<PathBuf>,
}

/// The built-in sample: (path, mode, content).
pub(super) const SAMPLE: &[(&str, u32, &[u8])] = &[
    ("README.txt", 0o644, include_bytes!("../../fixtures/sample/README.txt")),
    ("bin/hello.sh", 0o755, include_bytes!("../../fixtures/sample/bin/hello.sh")),
    ("docs/empty.txt", 0o644, include_bytes!("../../fixtures/sample/docs/empty.txt")),
    ("docs/squares.csv", 0o644, include_bytes!("../../fixtures/sample/docs/squares.csv")),
    ("ünïcödé/名前.txt", 0o644, include_bytes!("../../fixtures/sample/ünïcödé/名前.txt")),
];

pub(super) fn demo(a: DemoArgs) -> Result<u8> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match a.dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("airlock-demo-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?
            .keep(),
    };
    let sample = dir.join("sample");
    for (path, mode, content) in SAMPLE {
        let full = sample.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&full, content).map_err(|e| Error::io(&full, e))?;
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode)).map_err(|e| Error::io(&full, e))?;
    }
    let (public, secret) = (dir.join("demo.pub"), dir.join("demo.sec"));
    let bundle = dir.join("sample.airlock");
    let mirror = dir.join("mirror");
    let state = dir.join("state");
    let step = |title: &str, cmd: &str| -> Result<()> {
        say!("")?;
        say!("== {title}")?;
        say!("$ airlock {cmd}")
    };

    step(
        "1. make a signing key (exporter side)",
        &format!("keygen --public {} --secret {} --no-passphrase", public.display(), secret.display()),
    )?;
    keygen(KeygenArgs {
        public: public.clone(),
        secret: secret.clone(),
        no_passphrase: true,
        comment: "airlock demo".into(),
        passphrase_file: None,
        json: false,
    })?;

    step(
        "2. pack the sample into one signed bundle",
        &format!(
            "pack {} -o {} --key {} --label 'airlock demo' --expires 30d",
            sample.display(),
            bundle.display(),
            secret.display()
        ),
    )?;
    pack(PackArgs {
        sources: vec![sample.clone()],
        output: bundle.clone(),
        key: vec![secret.clone()],
        channel: "demo".into(),
        sequence: None,
        expires: Some("30d".into()),
        label: Some("airlock demo".into()),
        meta: vec!["origin=built-in sample".into()],
        level: airlock::pack::DEFAULT_LEVEL,
        threads: 0,
        sign_artifacts: false,
        volume_size: None,
        parity: 0,
        force: true,
        verify_written: false,
        state_dir: Some(state),
        // The demo shows pack's whole report (and its progress bar, on a terminal).
        quiet: false,
        follow_symlinks: false,
        skip_symlinks: false,
        secret: SecretKeyArgs { passphrase_file: None, allow_insecure_key_permissions: false },
        since: SinceArgs::default(),
        json: false,
    })?;

    step(
        "3. inspect it (no unpacking; signatures checked against --trust)",
        &format!("inspect {} --trust {}", bundle.display(), public.display()),
    )?;
    inspect(InspectArgs {
        bundle: bundle.clone(),
        json: false,
        trust: vec![public.clone()],
        policy: None,
        producers: false,
    })?;

    let trust = TrustArgs { policy: None, trust: vec![public.clone()], threshold: 1 };
    step(
        "4. verify everything, writing nothing (import side)",
        &format!("verify {} --trust {}", bundle.display(), public.display()),
    )?;
    verify(VerifyArgs {
        bundles: vec![bundle.clone()],
        trust: TrustArgs { policy: None, trust: trust.trust.clone(), threshold: 1 },
        quiet: false,
        json: false,
    })?;

    step(
        "5. import into a fresh mirror",
        &format!("import {} --trust {} --mirror {} --init", bundle.display(), public.display(), mirror.display()),
    )?;
    import(ImportArgs {
        bundles: vec![bundle.clone()],
        trust,
        mirror: mirror.clone(),
        init: true,
        allow_gap: false,
        base_check: BaseCheckArg::Stat,
        attic: false,
        allow_mass_retire: false,
        repair: false,
        clock_skew: DEFAULT_CLOCK_SKEW,
        quiet: false,
        json: false,
    })?;

    step("6. re-check the mirror and read its log", &format!("mirror verify {}", mirror.display()))?;
    let code = mirror_verify(&mirror, true, false, false)?;
    say!("$ airlock mirror log {}", mirror.display())?;
    mirror_log(&mirror, false)?;
    say!("")?;
    say!("Demo done: everything is in {}", dir.display())?;
    say!("Check the bundle with stock tools: tar --zstd -tvf {}", bundle.display())?;
    Ok(code)
}
