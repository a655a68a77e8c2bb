//! Integration tests against the local control plane (tests/controlplane/up).
//! One test binary, so the heavy dependencies are linked once.

mod admin;
mod bad_input;
mod binary;
mod chart;
mod conflicts;
mod controller;
mod controller_template;
mod data_safety;
mod docker_backend;
#[path = "../common/dockerd.rs"]
mod dockerd;
mod facade;
#[path = "../common/fixtures.rs"]
mod fixtures;
mod gameserver_schema;
mod kubernetes_backend;
mod leader;
mod plane;
mod real_node;
#[path = "../common/real_node.rs"]
mod real_node_common;
mod real_node_console;
mod real_node_players;
mod real_node_template;
mod support;
mod swarm_backend;
mod swarm_console;
mod swarm_controller;
mod swarm_players;
mod swarm_template;
mod template_import;
mod template_render;
#[path = "../common/testgame.rs"]
mod testgame;
