use super::canvas::incomplete_char_len;
use super::*;
use crate::fuzzing::{assert_same_screen, assert_same_state};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Output like programs write: mostly plain lines (colours, wide characters, wrapping,
/// progress rewrites, erased lines, invalid UTF-8), now and then something else.
fn generated_output(rng: &mut StdRng, events: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..events {
        // Some stretches set a colour and then print no colour change at all, so a colour
        // set long before must survive what is skipped.
        let colourless = rng.random_bool(0.3);
        for i in 0..rng.random_range(0..4000u32) {
            if colourless && i == 5 {
                out.extend_from_slice(b"\x1b[1;35;44m");
            }
            let kind = match rng.random_range(0..12) {
                1 | 2 | 8 if colourless => 0,
                kind => kind,
            };
            let line: Vec<u8> = match kind {
                0 => format!("plain {i} the quick brown fox\r\n").into(),
                1 => format!("\x1b[1;3{}mok\x1b[0m {i} \x1b[33mwarn\r\n", i % 8).into(),
                2 => format!("\x1b[38;5;{}mcol \x1b[38;2;1;2;3mtrue\r\n", i % 256).into(),
                3 => format!("\u{250c}\u{2500} \u{4e2d}\u{6587}{i} \u{65e5}\u{672c}\r\n").into(),
                4 => format!("\rprogress {i}%\x1b[K\r\x1b[2Gdone\x1b[3C!\x1b[2D?\r\n").into(),
                5 => format!("{}\r\n", "wrap".repeat(rng.random_range(10..80))).into(),
                6 => format!("tab\there\x08\x08X{i}\n").into(),
                7 => b"bad \xff\xc3 utf8 \xe4\xb8\r\n".to_vec(),
                8 => format!("\x1b[;4munder\x1b[m \x1b[7m{i}\r\n").into(),
                9 => b"\x1b[2Kerased\x1b[1K\x1b[0K\r\n".to_vec(),
                10 => format!("no newline {i} ").into(),
                _ => b"\r\n".to_vec(),
            };
            out.extend_from_slice(&line);
        }
        let event: &[u8] = match rng.random_range(0..21) {
            0 => b"\x07",
            1 => b"\x1b]0;a title\x07",
            2 => b"\x1b[5;3H",
            3 => b"\x1b[2J\x1b[H",
            4 => b"\x1b[3;10r",
            5 => b"\x1b[r",
            6 => b"\x1b[?1049h\x1b[2;8r\x1b[Hin vim\r\n\x1b[6n",
            7 => b"\x1b[?1049l",
            8 => b"\x1b7\x1b[10;1Hsaved\x1b8",
            9 => b"\x1bM\x1bM\x1b[3A",
            10 => b"\x1b[2L\x1b[1M",
            11 => b"\x1b[?2004h\x1b[?1h",
            12 => b"\x1bP1$r\x07still dcs\x1b\\",
            13 => b"\x1b[?25l\x1b[>4;1m",
            14 => b"\x1bc",
            15 => b"\x1b[1;999r\x1b[6n",
            16 => b"\x1b[4h insert \x1b[4l",
            17 => b"\x1b[?7l nowrap \x1b[?7h",
            // A region with the cursor below it: line feeds overwrite the bottom row.
            18 => b"\x1b[2;6r\x1b[999;1H",
            _ => b"",
        };
        out.extend_from_slice(event);
    }
    out
}

#[test]
fn a_character_split_across_reads_does_not_eat_what_follows() {
    // vte 0.15 alone drops the line feed here (alacritty/vte#159).
    let mut screen = Screen::drawing_everything(TermSize::new(20, 5).unwrap());
    screen.process(b"ab\xc3");
    screen.process(b"\xa6\n\x92");
    let text = screen.text();
    assert_eq!(text.lines[0], "ab\u{e6}");
    assert_eq!((text.cursor_row, text.cursor_col), (1, 3));
    assert_eq!(incomplete_char_len(b"a\xe4\xb8"), 2);
    assert_eq!(incomplete_char_len(b"a\xe4\xb8\xad"), 0);
    assert_eq!(incomplete_char_len(b"\xf0\x9f\x98"), 3);
    assert_eq!(incomplete_char_len(b"\x98\x98\x98"), 0);
    assert_eq!(incomplete_char_len(b""), 0);
}

#[test]
fn colours_set_before_skipped_output_survive_it() {
    let size = TermSize::new(80, 24).unwrap();
    let mut deferred = Screen::new(size);
    let mut reference = Screen::drawing_everything(size);
    let mut output = b"\x1b[1;35;44m".to_vec();
    for i in 0..3000 {
        output.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    deferred.process(&output);
    reference.process(&output);
    assert!(deferred.skipped_bytes() > 0);
    assert_same_screen(&mut deferred, &mut reference, output.len());
}

#[test]
fn output_below_a_scroll_region_is_never_skipped() {
    // Line feeds below the region do not scroll: every line overwrites the bottom row, and
    // the long first line's tail stays visible after thousands of short ones.
    let size = TermSize::new(80, 24).unwrap();
    let mut deferred = Screen::new(size);
    let mut reference = Screen::drawing_everything(size);
    let region = b"\x1b[2;6r\x1b[24;1Hdrawn at once\r\n";
    let mut output = region.to_vec();
    output.extend_from_slice(format!("{}\r\n", "long".repeat(15)).as_bytes());
    for i in 0..3000 {
        output.extend_from_slice(format!("{i}\r\n").as_bytes());
    }
    deferred.process(&output);
    reference.process(&output);
    assert_same_screen(&mut deferred, &mut reference, output.len());
    assert_eq!(deferred.skipped_bytes(), 0);
    // Once the region is gone, skipping resumes.
    deferred.process(b"\x1b[r\r\n");
    reference.process(b"\x1b[r\r\n");
    deferred.process(&output[region.len()..]);
    reference.process(&output[region.len()..]);
    assert_same_screen(&mut deferred, &mut reference, output.len());
    assert!(deferred.skipped_bytes() > 0);
}

#[test]
fn deferred_drawing_matches_drawing_everything() {
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let output = generated_output(&mut rng, 40);
        let size = TermSize::new(rng.random_range(20..140), rng.random_range(5..60)).unwrap();
        let mut deferred = Screen::new(size);
        let mut reference = Screen::drawing_everything(size);
        let mut at = 0;
        while at < output.len() {
            let end = (at + rng.random_range(1..20_000)).min(output.len());
            deferred.process(&output[at..end]);
            reference.process(&output[at..end]);
            at = end;
            assert_same_state(&mut deferred, &mut reference, at);
            match rng.random_range(0..40) {
                0 | 1 => assert_same_screen(&mut deferred, &mut reference, at),
                2 => {
                    let size =
                        TermSize::new(rng.random_range(1..300), rng.random_range(1..MAX_DIMENSION))
                            .unwrap();
                    deferred.resize(size);
                    reference.resize(size);
                    assert_same_screen(&mut deferred, &mut reference, at);
                }
                _ => {}
            }
        }
        assert_same_screen(&mut deferred, &mut reference, at);
        assert!(
            deferred.skipped_bytes() > output.len() as u64 / 20,
            "seed {seed}: only {} of {} bytes skipped",
            deferred.skipped_bytes(),
            output.len()
        );
    }
}

#[test]
fn tracks_text_title_cursor_and_alternate_screen() {
    let mut screen = Screen::new(TermSize::new(20, 5).unwrap());
    screen.process(b"hello\r\n\x1b]0;my title\x07wor");
    screen.process("ld \u{e9}".as_bytes());
    let text = screen.text();
    assert_eq!(text.lines[0], "hello");
    assert_eq!(text.lines[1], "world \u{e9}");
    assert_eq!((text.cursor_row, text.cursor_col), (1, 7));
    assert_eq!(text.title, "my title");
    assert!(!text.alternate_screen);

    screen.process(b"\x1b[?1049h\x1b[Hfull");
    assert!(screen.text().alternate_screen);
    assert!(screen.redraw().starts_with(b"\x1b[?1049h"));

    // Replaying the redraw into a fresh model reproduces the screen.
    let mut copy = Screen::new(TermSize::new(20, 5).unwrap());
    copy.process(&screen.redraw());
    assert_eq!(copy.text().lines, screen.text().lines);
}

#[test]
fn scrollback_lines_come_oldest_first() {
    let mut screen = Screen::new(TermSize::new(10, 3).unwrap());
    for i in 1..=10 {
        screen.process(format!("line{i}\r\n").as_bytes());
    }
    // Visible: line9, line10, and the empty cursor row; above them line1..line8.
    assert_eq!(screen.text().lines, ["line9", "line10", ""]);
    assert_eq!(screen.scrollback_lines(2), ["line7", "line8"]);
    assert_eq!(
        screen.scrollback_lines(5),
        ["line4", "line5", "line6", "line7", "line8"]
    );
    assert_eq!(screen.scrollback_lines(100).len(), 8);
    assert_eq!(screen.scrollback_lines(0), Vec::<String>::new());
    assert_eq!(
        screen.text().lines,
        ["line9", "line10", ""],
        "the view is restored"
    );
}

#[test]
fn endless_escape_strings_are_cut() {
    let mut screen = Screen::new(TermSize::new(20, 3).unwrap());
    screen.process(b"\x1b]0;");
    for _ in 0..1000 {
        screen.process(&[b'a'; 10_000]);
    }
    screen.process(b"\x07after");
    assert_eq!(
        screen.title().len(),
        MAX_ESCAPE_STRING - 2,
        "\"0;\" counts too"
    );
    assert_eq!(screen.text().lines[0], "after");
    // ST and a new escape both end a string; short strings pass whole.
    screen.process(b"\x1b]2;short\x1b\\\x1b]2;x\x1b[1mB");
    assert_eq!(screen.title(), "x");
    assert_eq!(screen.text().lines[0], "afterB");
}

#[test]
fn rejects_zero_and_huge_sizes() {
    assert!(TermSize::new(0, 24).is_none());
    assert!(TermSize::new(80, 0).is_none());
    assert!(TermSize::new(MAX_DIMENSION + 1, 24).is_none());
    assert!(TermSize::new(1, 1).is_some());
}

#[test]
fn one_column_screen_survives_wide_characters() {
    let mut screen = Screen::new(TermSize::new(1, 3).unwrap());
    screen.process("a\u{4e2d}\u{6587}b\r\n\x1b[5@x\x1b[3P".as_bytes());
    screen.resize(TermSize::new(2, 2).unwrap());
    screen.process("\u{4e2d}".as_bytes());
    let _ = screen.text();
    let _ = screen.redraw();
}

#[test]
fn a_finished_screen_answers_as_the_live_one_did() {
    let mut screen = Screen::new(TermSize::new(30, 4).unwrap());
    for i in 0..50 {
        screen.process(format!("\x1b[3{}mline {i}\x1b[m\r\n", i % 8).as_bytes());
    }
    screen.process(b"\x1b]2;done\x07\x07\x1b[?2004h\x1b[?1hprompt$ ");
    let (text, ansi, redraw) = (screen.text(), screen.ansi(), screen.redraw());
    let scrollback = screen.scrollback_lines(30);
    screen.finish();
    assert!(screen.is_finished());
    assert_eq!(screen.text().lines, text.lines);
    assert_eq!(screen.text().cursor_col, text.cursor_col);
    assert_eq!((screen.title(), screen.bells()), ("done", 1));
    assert!(screen.bracketed_paste() && screen.application_cursor());
    assert_eq!(screen.ansi(), ansi);
    assert_eq!(screen.redraw(), redraw);
    assert_eq!(screen.scrollback_lines(30), scrollback);
    assert_eq!(screen.scrollback_lines(2), scrollback[28..]);
    // A finished screen takes nothing more.
    screen.process(b"more");
    screen.resize(TermSize::new(10, 2).unwrap());
    assert_eq!(screen.text().lines, text.lines);
}

#[test]
fn every_title_change_is_noticed_once_and_floods_are_cut() {
    let mut screen = Screen::new(TermSize::new(20, 3).unwrap());
    screen.process(b"\x1b]0;a\x07\x1b]0;b\x07\x1b]0;b\x07");
    assert_eq!(screen.take_title_changes(), ["a", "b"]);
    assert!(screen.take_title_changes().is_empty());
    for i in 0..100 {
        screen.process(format!("\x1b]2;t{i}\x07").as_bytes());
    }
    let changes = screen.take_title_changes();
    assert_eq!(changes.len(), MAX_TITLE_CHANGES);
    assert_eq!(changes.last().unwrap(), "t99");
}

#[test]
fn a_dozing_screen_wakes_as_it_was() {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut output = generated_output(&mut rng, 30);
        // Short enough to replay, and then some: past the limit it stays awake.
        output.truncate(24 * 1024);
        let size = TermSize::new(rng.random_range(20..140), rng.random_range(5..60)).unwrap();
        let mut dozing = Screen::new(size);
        let mut reference = Screen::drawing_everything(size);
        let mut at = 0;
        let mut slept = false;
        while at < output.len() {
            let end = (at + rng.random_range(1..2_000)).min(output.len());
            dozing.process(&output[at..end]);
            reference.process(&output[at..end]);
            at = end;
            assert_eq!(dozing.take_title_changes(), reference.take_title_changes());
            assert_same_state(&mut dozing, &mut reference, at);
            if rng.random_bool(0.5) {
                slept |= dozing.doze();
                // Asked without waking it.
                assert_same_state(&mut dozing, &mut reference, at);
                assert_eq!(dozing.is_dormant(), at <= 16 * 1024, "at {at}");
            }
            match rng.random_range(0..6) {
                0 => assert_same_screen(&mut dozing, &mut reference, at),
                1 => {
                    let size =
                        TermSize::new(rng.random_range(1..200), rng.random_range(1..80)).unwrap();
                    dozing.resize(size);
                    reference.resize(size);
                }
                _ => {}
            }
        }
        assert!(slept, "seed {seed} never slept");
        dozing.doze();
        assert_same_screen(&mut dozing, &mut reference, at);
        dozing.finish();
        reference.finish();
        assert_same_screen(&mut dozing, &mut reference, at);
    }
}

#[test]
fn answers_owed_are_taken_before_a_screen_dozes_and_not_owed_again() {
    let mut screen = Screen::new(TermSize::new(80, 24).unwrap());
    screen.process(b"$ \x1b[6n\x1b]0;shell\x07");
    assert!(!screen.doze(), "an answer is still owed");
    assert_eq!(screen.take_replies().len(), 1);
    assert!(!screen.doze(), "a title change is still to be told");
    assert_eq!(screen.take_title_changes(), vec!["shell".to_owned()]);
    assert!(screen.doze());
    assert_eq!(screen.title(), "shell");
    assert_eq!(screen.text().lines[0], "$");
    assert!(
        screen.take_replies().is_empty(),
        "woken, it owes nothing again"
    );
    assert!(screen.take_title_changes().is_empty());
    screen.process(b"ls\r\n");
    assert_eq!(screen.text().lines[..2], ["$ ls".to_owned(), String::new()]);
}
