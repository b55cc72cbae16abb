//! The bash side of dynamic completion (`source <(COMPLETE=bash strata)`). clap_complete's
//! own bash script passes bash's words on as they are, and bash splits words at every
//! character of `COMP_WORDBREAKS`, `:` included: `lay:t<TAB>` reaches strata as `lay`, `:`,
//! `t`, so strata completes `t` as a path. This script joins the pieces again (at `:` and
//! `=`) before asking strata, and hands bash back only what follows the last of them, the
//! part bash replaces, so
//! no user needs to change `COMP_WORDBREAKS` (which every other command's completion shares).
//! Candidates are computed by clap_complete's engine as for every shell.

use std::ffi::OsString;
use std::io::Write;

use clap_complete::env::EnvCompleter;

/// The registration script; `{{FUNC}}`, `{{VAR}}`, `{{COMPLETER}}` and `{{BIN}}` are filled in.
const SCRIPT: &str = r#"
{{FUNC}}() {
    local IFS=$'\013' line=${COMP_LINE:0:COMP_POINT} rest w i blank last
    local words=()
    # Rebuild the words up to the cursor, joining what bash split at a `:` or `=` with no
    # blank between (LAYOUT:TAG, --layout=DIR), by following the words through the line.
    for (( i = 0; i <= COMP_CWORD; i++ )); do
        w=${COMP_WORDS[i]}
        if (( i == COMP_CWORD && BASH_VERSINFO[0] >= 4 )); then
            w=$2
        fi
        rest=${line#"${line%%[![:blank:]]*}"}
        blank=false
        [[ $rest != "$line" ]] && blank=true
        line=${rest#"$w"}
        last=$(( ${#words[@]} - 1 ))
        if (( last >= 1 )) && [[ $blank == false ]] && [[ $w == [:=]* || ${words[last]} == *[:=] ]]; then
            words[last]+=$w
        else
            words+=("$w")
        fi
    done
    local cword=$(( ${#words[@]} - 1 ))
    local cur=${words[cword]}
    local space
    if compopt +o nospace 2> /dev/null; then
        space=false
    else
        space=true
    fi
    COMPREPLY=( $( \
        _CLAP_IFS="$IFS" \
        _CLAP_COMPLETE_INDEX="$cword" \
        _CLAP_COMPLETE_COMP_TYPE="${COMP_TYPE-}" \
        _CLAP_COMPLETE_SPACE="$space" \
        {{VAR}}="bash" \
        {{COMPLETER}} -- "${words[@]}" \
    ) )
    if [[ $? != 0 ]]; then
        unset COMPREPLY
        return
    fi
    # Bash replaces only the text after the last `:` or `=` that breaks words.
    local breaks=${COMP_WORDBREAKS//[^:=]}
    if [[ -n $breaks && $cur == *["$breaks"]* ]]; then
        local done=${cur%"${cur##*["$breaks"]}"}
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"$done"}
        done
    fi
    # Keep the cursor on a candidate that goes on (`DIR/`, `LAYOUT:`, `--flag=`).
    if [[ $space == false && ${COMPREPLY-} =~ [=/:]$ ]]; then
        compopt -o nospace
    fi
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -o nospace -o bashdefault -o nosort -F {{FUNC}} {{BIN}}
else
    complete -o nospace -o bashdefault -F {{FUNC}} {{BIN}}
fi
"#;

/// Bash, as clap_complete's adapter but for the registration script.
pub struct Bash;

impl EnvCompleter for Bash {
    fn name(&self) -> &'static str {
        "bash"
    }

    fn is(&self, name: &str) -> bool {
        name == "bash"
    }

    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        // clap_complete's function name, so anything that names it keeps working.
        let function = format!(
            "_clap_complete_{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        let script = SCRIPT
            .replace("{{FUNC}}", &function)
            .replace("{{VAR}}", var)
            .replace("{{BIN}}", &single_quoted(bin))
            .replace("{{COMPLETER}}", &single_quoted(completer));
        buf.write_all(script.as_bytes())
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&std::path::Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        clap_complete::env::Bash.write_complete(cmd, args, current_dir, buf)
    }
}

/// `text` as one shell word.
fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The shells dynamic completion answers: clap_complete's, with bash's script replaced.
pub const SHELLS: clap_complete::env::Shells<'static> = clap_complete::env::Shells(&[
    &Bash,
    &clap_complete::env::Elvish,
    &clap_complete::env::Fish,
    &clap_complete::env::Powershell,
    &clap_complete::env::Zsh,
]);
