//! Where a bundle is read from: a file, standard input or a pipe, or a volume set
//! (FORMAT.md §14). [`Bundle::open_source`](super::Bundle::open_source) reads any of them;
//! everything after the head is the same procedure (§8).

use std::path::{Path, PathBuf};

/// A bundle's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleSource {
    /// A bundle file, or a FIFO; a file that ends with a volume trailer is read as a volume
    /// set of that one volume.
    File(PathBuf),
    /// Standard input: a bundle, or the data volumes of a set concatenated in order.
    Stdin,
    /// The volumes of one set, data and parity, in any order; some may be missing. Blocks
    /// of the volumes present are streamed without their own hash check (the payload's
    /// SHA-256s check them); a missing volume is rebuilt from checked blocks.
    Volumes(Vec<PathBuf>),
    /// [`BundleSource::Volumes`] with every block checked against its signed SHA-256 as it
    /// is read, and rebuilt from parity when it does not match: slower, and what a second
    /// attempt uses after a set was rejected, to find and rebuild damaged blocks.
    VolumesChecked(Vec<PathBuf>),
}

/// The argument that names standard input.
pub const STDIN_ARG: &str = "-";

impl BundleSource {
    /// The source the command-line arguments name: `-` is standard input, one path a
    /// bundle (or a volume), several paths the volumes of a set.
    pub fn from_args(args: &[PathBuf]) -> BundleSource {
        match args {
            [one] if one.as_os_str() == STDIN_ARG => BundleSource::Stdin,
            [one] => BundleSource::File(one.clone()),
            many => BundleSource::Volumes(many.to_vec()),
        }
    }

    /// How the source is named in messages and the import log.
    pub fn describe(&self) -> String {
        match self {
            BundleSource::File(p) => p.display().to_string(),
            BundleSource::Stdin => "standard input".to_owned(),
            BundleSource::Volumes(paths) | BundleSource::VolumesChecked(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                names.join(" ")
            }
        }
    }

    /// A path to name the source by (standard input: `-`).
    pub fn display_path(&self) -> &Path {
        match self {
            BundleSource::File(p) => p,
            BundleSource::Stdin => Path::new(STDIN_ARG),
            BundleSource::Volumes(paths) | BundleSource::VolumesChecked(paths) => {
                paths.first().map_or(Path::new(STDIN_ARG), PathBuf::as_path)
            }
        }
    }

    /// The same volumes read with every block checked ([`BundleSource::VolumesChecked`]);
    /// a file is taken as one volume. `None` for standard input.
    pub fn checking_every_block(&self) -> Option<BundleSource> {
        match self {
            BundleSource::File(p) => Some(BundleSource::VolumesChecked(vec![p.clone()])),
            BundleSource::Stdin => None,
            BundleSource::Volumes(paths) | BundleSource::VolumesChecked(paths) => {
                Some(BundleSource::VolumesChecked(paths.clone()))
            }
        }
    }
}

impl From<&Path> for BundleSource {
    fn from(path: &Path) -> BundleSource {
        BundleSource::File(path.to_owned())
    }
}

impl From<&PathBuf> for BundleSource {
    fn from(path: &PathBuf) -> BundleSource {
        BundleSource::File(path.clone())
    }
}

impl From<&BundleSource> for BundleSource {
    fn from(source: &BundleSource) -> BundleSource {
        source.clone()
    }
}
