//! `airlock policy`.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// Validate a policy file and print what it allows, in words.
    Check {
        /// The policy file.
        #[arg(value_name = "POLICY.toml")]
        policy: PathBuf,
    },
}

pub(super) fn policy_check(path: &Path) -> Result<u8> {
    let policy = Policy::load(path)?;
    println!("{}: valid policy (version {})", path.display(), airlock::policy::POLICY_VERSION);
    for line in policy.describe() {
        println!("{line}");
    }
    Ok(EXIT_OK)
}
