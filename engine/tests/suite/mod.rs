mod crash;
mod determinism;
mod flows;
mod history;
