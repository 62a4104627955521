mod crash;
mod determinism;
mod flows;
mod history;
mod sled;
