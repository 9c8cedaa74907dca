//! The process and the host around it, read from /proc, /sys and cgroup files.
