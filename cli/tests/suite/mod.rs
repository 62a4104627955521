mod crash;
mod dashboard;
mod inspect;
mod kill9;
mod owner;
mod pty;
mod run;
