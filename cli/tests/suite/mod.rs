mod crash;
mod histories;
mod inspect;
mod kill9;
mod owner;
mod pty;
mod run;
