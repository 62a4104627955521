mod common;
mod sec_exec;
mod sec_files;
mod sec_isolation;
mod sec_paths;
mod sec_run;
