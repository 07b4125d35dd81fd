//! `airlock completions SHELL` and the hidden `airlock man DIR`: shell completions and man
//! pages generated from the same clap definitions as `--help`, so they never drift from it.

use super::*;
use clap::CommandFactory;

#[derive(Args, Debug)]
pub(super) struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub(super) struct ManArgs {
    /// The directory to write the pages into (created if missing): airlock.1, and
    /// airlock-<command>.1 for every subcommand.
    dir: PathBuf,
}

/// Prints the completion script for `a.shell` to stdout (`airlock completions bash >
/// /etc/bash_completion.d/airlock`).
pub(super) fn completions(a: CompletionsArgs) -> Result<u8> {
    let mut command = Cli::command();
    out::rendered(|w| {
        clap_complete::generate(a.shell, &mut command, "airlock", w);
        Ok(())
    })?;
    Ok(EXIT_OK)
}

/// Writes the man pages into `a.dir` and names each one written.
pub(super) fn man_pages(a: ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&a.dir).map_err(|e| Error::io(&a.dir, e))?;
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built, so every subcommand has its display name (`airlock-mirror-verify`).
    command.build();
    let mut written = Vec::new();
    write_pages(command, &a.dir, &mut written)?;
    for page in written {
        say!("wrote {}", page.display())?;
    }
    Ok(EXIT_OK)
}

/// Writes `command`'s page (named by its display name), then its visible subcommands'.
fn write_pages(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render(&mut page).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(man.get_filename());
    airlock::io::durable::write_bytes(&path, 0o644, airlock::io::durable::Overwrite::Replace, &page)?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    Ok(())
}
