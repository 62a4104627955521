//! Remote shells and transfers: `ssh`, `scp`, `sftp` (OpenSSH's getopt: clustered
//! short options, values attached or separate), `rsync`, `curl`, `wget`.
//!
//! ssh's `-o Key=Value` is read by key: a few keys are harmless, the keys that run
//! commands (`ProxyCommand`, `LocalCommand`, `KnownHostsCommand`) are shell code
//! the policy reads, and any other key needs a person (`-F`, `PKCS11Provider` load
//! code; `Include` reads another config).

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::{self, GNU, Syntax, Table};

/// OpenSSH: options up to the first operand (ssh reads options again after the
/// host, up to the command), no long options.
const OPENSSH: Syntax = Syntax {
    permute: false,
    abbrev: false,
    unknown_ok: false,
};

/// `-o` keys that only tune the connection.
const SAFE_KEYS: &[&str] = &[
    "port",
    "user",
    "hostname",
    "connecttimeout",
    "connectionattempts",
    "batchmode",
    "stricthostkeychecking",
    "serveraliveinterval",
    "serveralivecountmax",
    "tcpkeepalive",
    "identitiesonly",
    "identityfile",
    "loglevel",
    "compression",
    "addressfamily",
    "ciphers",
    "macs",
    "kexalgorithms",
    "hostkeyalgorithms",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "preferredauthentications",
    "passwordauthentication",
    "pubkeyauthentication",
    "kbdinteractiveauthentication",
    "numberofpasswordprompts",
    "updatehostkeys",
    "visualhostkey",
    "exitonforwardfailure",
    "checkhostip",
    "hashknownhosts",
    "requesttty",
    "ipqos",
    "rekeylimit",
    "forwardx11",
    "clearallforwardings",
];

/// Keys whose value is a command the local shell runs.
const COMMAND_KEYS: &[&str] = &["proxycommand", "localcommand", "knownhostscommand"];

fn table_of(name: &str) -> Option<&'static Table> {
    match name {
        "ssh" => table!(
            "1 2 4 6 A a C f G g K k M N n q s T t V v X x Y y B= b= c= D= E=!T e= F=!R I=!R \
             i= J= L= l= m= O=!U o= P= p= Q= R= S=!T W= w=!W"
        ),
        "scp" => table!("3 4 6 A B C O p q R r s T v c= D=!R F=!R i= J= l= o= P= S=!S X="),
        "sftp" => table!("4 6 A a C f N p q r v B= b=!R c= D=!R F=!R i= J= l= o= P= R= S=!S s= X="),
        "rsync" => table!(
            "v,verbose info= debug= stderr= q,quiet no-motd c,checksum a,archive r,recursive \
             R,relative no-implied-dirs b,backup backup-dir=!T suffix= u,update inplace append \
             append-verify d,dirs mkpath l,links L,copy-links copy-unsafe-links safe-links \
             munge-links k,copy-dirlinks K,keep-dirlinks H,hard-links p,perms E,executability \
             chmod= A,acls X,xattrs o,owner g,group devices copy-devices write-devices!W \
             specials D t,times U,atimes open-noatime N,crtimes O,omit-dir-times \
             J,omit-link-times super fake-super S,sparse preallocate n,dry-run W,whole-file \
             checksum-choice,cc= x,one-file-system B,block-size= e,rsh=!S rsync-path=!S \
             existing ignore-existing remove-source-files del delete delete-before \
             delete-during delete-delay delete-after delete-excluded ignore-missing-args \
             delete-missing-args ignore-errors force max-delete= max-size= min-size= \
             max-alloc= partial partial-dir=!T delay-updates m,prune-empty-dirs numeric-ids \
             usermap= groupmap= chown= timeout= contimeout= I,ignore-times size-only \
             modify-window,@= T,temp-dir=!T y,fuzzy compare-dest= copy-dest= link-dest= \
             z,compress compress-choice,zc= compress-level,zl= skip-compress= C,cvs-exclude \
             f,filter= F exclude= exclude-from= include= include-from= files-from= 0,from0 \
             old-args s,secluded-args,protect-args trust-sender copy-as=!U address= port= \
             sockopts= blocking-io outbuf= stats 8,8-bit-output h,human-readable progress P \
             i,itemize-changes M,remote-option=!U out-format= log-file=!T log-file-format= \
             password-file= early-input=!U list-only bwlimit= stop-after= stop-at= fsync \
             write-batch=!T only-write-batch=!T read-batch= protocol= iconv= checksum-seed= \
             4,ipv4 6,ipv6 V,version help daemon!U config=!U dparam=!U no-detach no-perms \
             no-owner no-group no-times no-recursive no-inc-recursive no-i-r no-whole-file \
             no-links no-D no-H no-o no-g no-p no-t no-v no-r no-l no-W no-c no-z"
        ),
        "curl" => table!(
            "o,output=!T O,remote-name!W remote-name-all!W J,remote-header-name!W \
             output-dir=!T create-dirs K,config=!R D,dump-header=!T c,cookie-jar=!T trace=!T \
             trace-ascii=!T stderr=!T libcurl=!T etag-save=!T etag-compare= hsts=!T \
             alt-svc=!T T,upload-file=!U w,write-out= H,header= X,request= d,data= data-raw= \
             data-binary= data-urlencode= data-ascii= json= F,form= form-string= u,user= \
             A,user-agent= e,referer= b,cookie= s,silent S,show-error L,location f,fail \
             fail-with-body I,head i,include v,verbose k,insecure compressed m,max-time= \
             connect-timeout= retry= retry-delay= retry-max-time= retry-all-errors \
             retry-connrefused x,proxy= G,get url= C,continue-at= r,range= z,time-cond= \
             max-filesize= limit-rate= y,speed-time= Y,speed-limit= 4,ipv4 6,ipv6 http1.0 \
             http1.1 http2 http3 0 tlsv1.2 tlsv1.3 cacert= capath= E,cert= key= cert-type= \
             key-type= pass= resolve= connect-to= interface= n,netrc netrc-optional \
             netrc-file= N,no-buffer no-progress-meter #,progress-bar q,disable g,globoff \
             location-trusted max-redirs= proto= proto-redir= oauth2-bearer= basic digest \
             ntlm negotiate anyauth unix-socket= abstract-unix-socket= path-as-is raw \
             tr-encoding h,help V,version M,manual"
        ),
        "wget" => table!(
            "O,output-document=!T o,output-file=!T a,append-output=!T P,directory-prefix=!T \
             i,input-file= e,execute=!R config=!R use-askpass=!S save-cookies=!T \
             load-cookies= post-file= body-file= warc-file=!T rejected-log=!T hsts-file=!T \
             x,force-directories no-directories n= no-host-directories q,quiet v,verbose \
             no-verbose c,continue N,timestamping S,server-response spider T,timeout= \
             t,tries= w,wait= random-wait U,user-agent= header= post-data= method= body-data= \
             user= password= no-check-certificate ca-certificate= certificate= private-key= \
             4,inet4-only 6,inet6-only r,recursive l,level= no-parent k,convert-links \
             K,backup-converted!W m,mirror p,page-requisites A,accept= R,reject= D,domains= \
             H,span-hosts no-clobber content-disposition!W trust-server-names!W max-redirect= \
             limit-rate= show-progress progress= no-cache no-cookies keep-session-cookies \
             https-only secure-protocol= no-hsts backups=!W b,background!U B,base= \
             F,force-html h,help V,version"
        ),
        _ => None,
    }
}

/// Reads one of the network programs.
pub(super) fn read(name: &str, argv: &[String]) -> Reading {
    let Some(t) = table_of(name) else {
        return broken(name, argv);
    };
    let syntax = if matches!(name, "ssh" | "scp" | "sftp") {
        OPENSSH
    } else {
        GNU
    };
    let mut r = Reading::default();
    let mut parsed = with_table(&mut r, name, t, syntax, argv, 1);
    if name == "ssh"
        && let Some(&host) = parsed.operands.first()
    {
        let after = with_table(&mut r, name, t, syntax, argv, host + 1);
        parsed.found.extend(after.found);
        parsed.operands = std::iter::once(host).chain(after.operands).collect();
    }
    for f in &parsed.found {
        let Some(o) = f.opt else { continue };
        if t.opt(o).name == "-o" {
            ssh_option(&mut r, f);
        }
        if name == "curl"
            && t.opt(o).name == "--write-out"
            && f.value.as_deref().is_some_and(|v| v.contains("%output{"))
        {
            r.push(
                f.at.clone(),
                Kind::Writes,
                format!("`{}` (curl --write-out with %output) writes a file", f.text),
            );
        }
    }
    let ops = &parsed.operands;
    match name {
        "ssh" => {
            if let Some(&k) = ops.get(1) {
                r.push(
                    ops[1..].to_vec(),
                    Kind::Shell,
                    format!("`ssh` runs `{}` on the remote host", argv[k..].join(" ")),
                );
            }
        }
        "sftp" if !parsed.found.iter().any(|f| f.text.starts_with("-b")) => r.stdin_code(
            argv,
            "`sftp` reads commands (`!cmd` runs a local shell) from its input",
        ),
        "scp" | "rsync" => {
            if let Some(&last) = ops.last()
                && ops.len() > 1
                && !remote(&argv[last])
            {
                r.push(
                    vec![last],
                    Kind::Target(argv[last].clone()),
                    format!("`{name}` writes `{}`", argv[last]),
                );
            }
        }
        _ => {}
    }
    r
}

/// `-o Key=Value` / `-oKey Value`.
fn ssh_option(r: &mut Reading, f: &options::Found) {
    let v = f.value.clone().unwrap_or_default();
    let key = v
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if SAFE_KEYS.contains(&key.as_str()) {
        return;
    }
    let kind = if COMMAND_KEYS.contains(&key.as_str()) {
        Kind::Shell
    } else {
        Kind::Unknown
    };
    let why = if kind == Kind::Shell {
        "runs a command"
    } else {
        "is an ssh option a person decides on"
    };
    r.push(f.at.clone(), kind, format!("`{}` {why}", f.text));
}

/// `host:path`, `user@host:path`, `rsync://…`: not a local path.
fn remote(p: &str) -> bool {
    p.contains("://")
        || p.split_once(':')
            .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::kinds;

    #[test]
    fn ssh_options_by_key() {
        assert_eq!(kinds("ssh -p 22 -oPort=22 host"), vec![]);
        assert_eq!(kinds("ssh -oProxyCommand=id host"), vec![Kind::Shell]);
        assert_eq!(kinds("ssh host -o LocalCommand=id"), vec![Kind::Shell]);
        assert_eq!(
            kinds("ssh -o PKCS11Provider=x.so host"),
            vec![Kind::Unknown]
        );
        assert_eq!(kinds("ssh -F cfg host"), vec![Kind::Code]);
        assert_eq!(kinds("ssh -vF cfg host"), vec![Kind::Code]);
        assert_eq!(kinds("ssh host rm -rf x"), vec![Kind::Shell]);
        assert_eq!(
            kinds("ssh host -v -oProxyCommand=x ls -l"),
            vec![Kind::Shell, Kind::Shell]
        );
        assert_eq!(kinds("scp -S ./x a host:b"), vec![Kind::Shell]);
        assert_eq!(
            kinds("scp host:b /etc/x"),
            vec![Kind::Target("/etc/x".into())]
        );
    }

    #[test]
    fn rsync_curl_wget() {
        assert_eq!(kinds("rsync -avz src/ host:dst/"), vec![]);
        assert_eq!(kinds("rsync -e sh src host:"), vec![Kind::Shell]);
        assert_eq!(kinds("rsync --rsh=sh src host:"), vec![Kind::Shell]);
        assert_eq!(kinds("rsync --rsync-p=x src host:"), vec![Kind::Shell]);
        assert_eq!(kinds("curl -sSL https://x"), vec![]);
        assert_eq!(
            kinds("curl -o /tmp/x https://x"),
            vec![Kind::Target("/tmp/x".into())]
        );
        assert_eq!(kinds("curl -K cfg"), vec![Kind::Code]);
        assert_eq!(kinds("wget -e x=y https://x"), vec![Kind::Code]);
        assert_eq!(kinds("wget -q https://x"), vec![]);
    }
}
