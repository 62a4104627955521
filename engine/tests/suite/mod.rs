mod always;
mod crash;
mod determinism;
mod faults;
mod flows;
mod history;
mod sled;
