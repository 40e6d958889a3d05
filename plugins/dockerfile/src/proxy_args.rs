// The one list of proxy build args: the frontend (`plan.rs`) and the host (`host/src/build/config.rs`) both
// `include!` this file, so they cannot disagree. Plain items only (no `use`, no `mod`).

/// Build args that are always defined (taken from `--build-arg` without an `ARG`) and never reach history
/// or cache keys: they are about the build machine, not the image.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];
