mod crash;
mod definition;
mod histories;
mod inspect;
mod kill9;
mod owner;
mod pty;
mod run;
