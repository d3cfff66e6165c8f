//! Terraform's confirmation prompt, shared by `apply` and `refresh`.

use std::io::{BufRead, IsTerminal, Write};

use super::error::CliError;

/// Asks `question` on stdin; only `yes` agrees. Refuses with `not_a_terminal` (which says how to
/// go on without asking) when stdin is not a terminal, so a pipeline never hangs on it.
pub(super) fn ask_yes(question: &str, not_a_terminal: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Refused(format!(
            "cannot ask for confirmation: standard input is not a terminal. {not_a_terminal}"
        )));
    }
    print!("\n{question} Only 'yes' will be accepted: ");
    std::io::stdout().flush().map_err(CliError::Stdout)?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::Stdin)?;
    Ok(answer.trim() == "yes")
}
