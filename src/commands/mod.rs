//! One module per job of the command line: each turns clap arguments into library calls and
//! an exit code. New subcommands get a file here and an arm in `main.rs`'s dispatch.

pub(crate) mod chat;
pub(crate) mod qa;
pub(crate) mod serve;
pub(crate) mod token;

/// Raises this process's open-file limit to its hard limit: a server or load generator
/// holding thousands of connections needs a descriptor for each.
pub(crate) fn raise_fd_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            if let Err(error) = setrlimit(Resource::Nofile, limit) {
                tracing::debug!(%error, "cannot raise the open-file limit");
            }
        }
    }
}
