//! Game templates (issue 16): what a Pterodactyl/Pelican egg holds, for a
//! GameServer to name and fill in. So far: the rules its variables are
//! checked by ([`rules`]).

pub mod rules;
