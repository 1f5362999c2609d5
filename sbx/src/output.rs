//! How sbx talks to the terminal: colors, progress bars and error rendering are used only on a
//! TTY, without `NO_COLOR`, and without `--quiet`.

use std::io::IsTerminal;

use crate::cli::{Cli, ColorChoice};

/// Output settings derived once from the flags and the environment.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// Use ANSI colors.
    pub color: bool,
    /// Draw progress bars (stderr is a terminal and not quiet).
    pub progress: bool,
    /// Print only errors.
    pub quiet: bool,
    /// Verbosity level.
    pub verbose: u8,
    /// stderr is a terminal: wrap error text to its width (logs and pipes get unwrapped lines).
    pub tty: bool,
}

impl Output {
    /// Reads `--color`, `--quiet`, `-v`, `NO_COLOR` and whether stderr is a terminal.
    pub fn from_cli(cli: &Cli) -> Self {
        let tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Self {
            color,
            progress: tty && !cli.quiet && cli.color != ColorChoice::Never,
            quiet: cli.quiet,
            verbose: cli.verbose,
            tty,
        }
    }

    /// Installs miette's renderer: graphical with snippets always, colors only when allowed,
    /// lines wrapped only on a terminal (so CI logs and snapshots do not depend on path lengths).
    pub fn install_error_renderer(self) {
        let color = self.color;
        let wrap = self.tty;
        // A hook can only be set once per process; a second call is harmless to ignore.
        let _ = miette::set_hook(Box::new(move |_| {
            Box::new(
                miette::MietteHandlerOpts::new()
                    .color(color)
                    .unicode(color)
                    .terminal_links(false)
                    .context_lines(1)
                    .wrap_lines(wrap)
                    .build(),
            )
        }));
    }

    /// Wraps `text` in an ANSI style when colors are on (`1` bold, `2` dim, `32` green, `33` yellow).
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
}
