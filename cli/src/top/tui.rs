//! `top` on a terminal: a full-screen view (ratatui on crossterm) redrawn every interval and on
//! every resize, scrolled with the arrow keys, quit with q, Esc or Ctrl-C.

use super::view::{self, LineKind, View};
use super::{TopArgs, Watch};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use std::time::{Duration, Instant};

/// What the screen shows besides the view.
struct Screen {
    view: View,
    /// Rows scrolled off the top.
    scroll: usize,
    /// The bottom line: what is watched and how to leave, or that the pipeline ended.
    status: String,
    /// The status is news (the pipeline ended, a look failed): shown highlighted.
    alert: bool,
}

/// Runs the full-screen view until the user quits. The terminal is put back as it was on the way
/// out, also when this panics (ratatui's panic hook restores it first).
pub fn run(args: &TopArgs, mut watch: Watch) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let watched = match &args.pipeline {
        Some(name) => format!("pipeline {name}"),
        None => "every pipeline".to_string(),
    };
    let normal = format!(
        "shmline top: {watched}, every {} s | q quit, ↑↓ PgUp PgDn scroll",
        args.interval.as_secs_f64()
    );
    let mut screen = Screen {
        view: watch.first_view(),
        scroll: 0,
        status: normal.clone(),
        alert: false,
    };
    let mut ended = false;
    let mut next_look = Instant::now() + args.interval;
    let result = loop {
        if let Err(e) = terminal.draw(|frame| draw(frame, &mut screen)) {
            break Err(e);
        }
        // Once the pipeline has ended there is nothing more to look at: wait for keys only.
        let wait = if ended {
            Duration::from_secs(3600)
        } else {
            next_look.saturating_duration_since(Instant::now())
        };
        match event::poll(wait) {
            Err(e) => break Err(e),
            Ok(true) => match event::read() {
                Err(e) => break Err(e),
                Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                    let ctrl_c = key.code == KeyCode::Char('c')
                        && key.modifiers.contains(KeyModifiers::CONTROL);
                    match key.code {
                        KeyCode::Char('q' | 'Q') | KeyCode::Esc => break Ok(()),
                        _ if ctrl_c => break Ok(()),
                        KeyCode::Up | KeyCode::Char('k') => {
                            screen.scroll = screen.scroll.saturating_sub(1)
                        }
                        KeyCode::Down | KeyCode::Char('j') => screen.scroll += 1,
                        KeyCode::PageUp => screen.scroll = screen.scroll.saturating_sub(10),
                        KeyCode::PageDown => screen.scroll += 10,
                        KeyCode::Home => screen.scroll = 0,
                        KeyCode::End => screen.scroll = usize::MAX,
                        _ => {}
                    }
                }
                // A resize (or anything else) just redraws, at the top of the loop.
                Ok(_) => {}
            },
            Ok(false) => {
                match watch.next() {
                    Ok(step) => {
                        screen.view = step.view;
                        if step.ended {
                            ended = true;
                            screen.alert = true;
                            screen.status =
                                format!("{watched} has ended: its final state is shown | q quit");
                        } else if screen.alert {
                            screen.alert = false;
                            screen.status = normal.clone();
                        }
                    }
                    Err(e) => {
                        screen.alert = true;
                        screen.status = format!("cannot look at {watched}: {e} | q quit");
                    }
                }
                let now = Instant::now();
                next_look = (next_look + args.interval).max(now);
            }
        }
    };
    ratatui::restore();
    result
}

/// Draws the view above one status line; rows are cut at the right edge, never wrapped.
fn draw(frame: &mut Frame<'_>, screen: &mut Screen) {
    let [body, status] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(frame.area());
    let rows = view::lines(&screen.view);
    // Keep the last page full when scrolled to the end (or beyond, after a shrink).
    let most = rows.len().saturating_sub(body.height as usize);
    screen.scroll = screen.scroll.min(most);
    let lines: Vec<Line<'_>> = rows
        .into_iter()
        .skip(screen.scroll)
        .take(body.height as usize)
        .map(|(kind, text)| {
            let style = match kind {
                LineKind::Title => Style::new().add_modifier(Modifier::BOLD),
                LineKind::Header => Style::new().add_modifier(Modifier::REVERSED),
                LineKind::Plain => Style::new(),
            };
            Line::styled(text, style)
        })
        .collect();
    frame.render_widget(Paragraph::new(Text::from(lines)), body);
    let style = if screen.alert {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::DIM)
    };
    frame.render_widget(
        Paragraph::new(Line::styled(screen.status.clone(), style)),
        status,
    );
}
