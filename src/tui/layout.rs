//! How the screen's width is shared: the tab list, the message view and the member list
//! (which panes give way on a narrow terminal). Drawing (`render/`) lays the screen out
//! with it; the app (`app/`) asks it whether the member list fits before showing it.

/// Width of the tab list.
pub const TAB_LIST_WIDTH: u16 = 16;
/// Width of the tab list cut down to numbers and activity marks.
const TAB_NUMBERS_WIDTH: u16 = 5;
/// The message view keeps at least this many columns (time, name and about 27 columns of
/// text); panes give way to it: first the tab list shrinks to numbers, then the member
/// list goes, then the tab list.
const MIN_VIEW_WIDTH: u16 = 44;
/// Width of the member list.
const MEMBER_LIST_WIDTH: u16 = 18;

/// Widths of the tab list and the member list for a screen `width` wide: the first
/// layout that leaves the message view `MIN_VIEW_WIDTH`.
pub fn pane_widths(width: u16, members: bool) -> (u16, u16) {
    let members = if members { MEMBER_LIST_WIDTH } else { 0 };
    [
        (TAB_LIST_WIDTH, members),
        (TAB_NUMBERS_WIDTH, members),
        (TAB_NUMBERS_WIDTH, 0),
        (0, 0),
    ]
    .into_iter()
    .find(|(tabs, members)| width >= tabs + members + MIN_VIEW_WIDTH)
    .unwrap_or((0, 0))
}

/// Whether a screen `width` wide has room for the member list (F2).
pub fn member_list_fits(width: u16) -> bool {
    pane_widths(width, true).1 > 0
}
