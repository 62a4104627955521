mod crash;
mod inspect;
mod owner;
mod pty;
mod run;
