mod crash;
mod inspect;
mod kill9;
mod owner;
mod pty;
mod run;
mod dashboard;
