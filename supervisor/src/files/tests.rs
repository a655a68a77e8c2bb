use super::*;

fn set(key: &str, value: &str) -> Edit {
    Edit { key: key.to_string(), value: Some(value.to_string()), replace: None }
}

fn replace(key: &str, pairs: &[(&str, &str)]) -> Edit {
    let replace = pairs.iter().map(|(m, v)| Replacement { matches: m.to_string(), value: v.to_string() }).collect();
    Edit { key: key.to_string(), value: None, replace: Some(replace) }
}

fn ok(parser: Parser, text: &str, edits: &[Edit]) -> String {
    edit(parser, text, edits).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_json_of_config_files_is_read_and_checked() {
    let json = r#"[{"path": "/home/container/server.properties", "parser": "properties",
        "edits": [{"key": "server-port", "value": "25565"},
                  {"key": "motd", "replace": [{"match": "regex:^A.*", "value": "B"}, {"match": "x", "value": "y"}]}]},
        {"path": "/home/container/config.yml", "parser": "yml", "edits": []}]"#;
    let files = ConfigFile::parse_list(json).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].path, "/home/container/server.properties");
    assert_eq!(files[0].parser, Parser::Properties);
    assert_eq!(files[0].edits, [set("server-port", "25565"), replace("motd", &[("regex:^A.*", "B"), ("x", "y")])]);
    assert_eq!(files[1].parser, Parser::Yaml);
    assert_eq!(ConfigFile::parse_list(&ConfigFile::list_to_json(&files)).unwrap(), files);

    let e = |json: &str| ConfigFile::parse_list(json).unwrap_err();
    let file = |edits: &str| format!(r#"[{{"path": "/a", "parser": "ini", "edits": [{edits}]}}]"#);
    assert!(e(r#"[{"path": "a", "parser": "ini", "edits": []}]"#).contains("a: not an absolute path"));
    assert!(e(&file(r#"{"key": "k"}"#)).contains("/a: k: exactly one of value or replace"));
    assert!(
        e(&file(r#"{"key": "k", "value": "v", "replace": [{"match": "a", "value": "b"}]}"#)).contains("exactly one")
    );
    assert!(e(&file(r#"{"key": "k", "replace": []}"#)).contains("an empty replace list"));
    assert!(e(&file(r#"{"key": "", "value": "v"}"#)).contains("an empty key"));
    assert!(e(&file(r#"{"key": "k", "valeu": "v"}"#)).contains("unknown field `valeu`"));
    assert!(e(r#"[{"path": "/a", "parser": "toml", "edits": []}]"#).contains("unknown variant `toml`"));
}

#[test]
fn a_replacement_is_exact_or_a_regex_and_the_first_matching_wins() {
    let e = replace("k", &[("regex:^(\\d+)-old$", "$1-new"), ("exact", "EXACT"), ("regex:^.*$", "any")]);
    assert_eq!(e.new_value(Some("12-old")).unwrap().as_deref(), Some("12-new"));
    assert_eq!(e.new_value(Some("exact")).unwrap().as_deref(), Some("EXACT"));
    assert_eq!(e.new_value(Some("other")).unwrap().as_deref(), Some("any"));
    assert_eq!(e.new_value(None).unwrap(), None, "no key: nothing to replace");
    // The regex's matches are replaced (as Wings does), not the whole value.
    let part = replace("k", &[("regex:old", "new")]);
    assert_eq!(part.new_value(Some("an old world, old")).unwrap().as_deref(), Some("an new world, new"));
    let every = replace("k", &[("regex:.", "x")]);
    assert_eq!(every.new_value(Some("abc")).unwrap().as_deref(), Some("xxx"));
    let none = replace("k", &[("a", "b"), ("regex:^z", "y")]);
    assert_eq!(none.new_value(Some("c")).unwrap(), None);
    let bad = replace("motd", &[("regex:(", "x")]).new_value(Some("v")).unwrap_err();
    assert!(bad.starts_with("motd: `regex:(` is not a valid regular expression"), "{bad}");
}

const SERVER_PROPERTIES: &str = "\
#Minecraft server properties
#Thu Jan 01 00:00:00 UTC 2026
enable-jmx-monitoring=false
server-ip=0.0.0.0
server-port=25565
# a comment in the middle
motd=A Minecraft Server
query.port=25565
level-seed=
";

#[test]
fn properties_keep_comments_and_order_and_append_missing_keys() {
    let edits = [
        set("server-ip", ""),
        set("server-port", "25570"),
        set("query.port", "25570"),
        replace("motd", &[("regex:^A (.*)$", "My $1")]),
        replace("level-seed", &[("nothing", "x")]),
        set("max-players", "10"),
        // Not there: a replacement creates nothing.
        replace("white-list", &[("false", "true")]),
    ];
    assert_eq!(
        ok(Parser::Properties, SERVER_PROPERTIES, &edits),
        "\
#Minecraft server properties
#Thu Jan 01 00:00:00 UTC 2026
enable-jmx-monitoring=false
server-ip=
server-port=25570
# a comment in the middle
motd=My Minecraft Server
query.port=25570
level-seed=
max-players=10
"
    );
}

#[test]
fn properties_values_are_escaped_and_read_unescaped() {
    let text = "motd = \\u00a76Welcome\\ttab\nlong: first \\\n    second\n! bang comment\nflag\n";
    // The current value is unescaped, continuation lines joined.
    let edits = [
        replace("motd", &[("§6Welcome\ttab", "§cRed – \\ ok")]),
        replace("long", &[("first second", " lead\nnext")]),
        set("flag", "on"),
        set("key with=sep", "v"),
    ];
    assert_eq!(
        ok(Parser::Properties, text, &edits),
        "motd = \\u00a7cRed \\u2013 \\\\ ok\nlong: \\ lead\\nnext\n! bang comment\nflag=on\nkey\\ with\\=sep=v\n"
    );
    assert_eq!(ok(Parser::Properties, "", &[set("emoji", "😀")]), "emoji=\\ud83d\\ude00\n");
}

#[test]
fn the_file_parser_replaces_whole_lines_starting_with_the_key() {
    let script = "#!/bin/bash\nMEMORY=1024\njava -Xmx1024M -jar server.jar nogui\nMEMORY_NOTE=keep\n";
    let edits = [
        set("MEMORY=", "MEMORY=2048"),
        replace("java ", &[("regex:-Xmx\\d+M", "-Xmx2048M")]),
        replace("#!", &[("#!/bin/sh", "never")]),
        set("missing", "not added"),
    ];
    assert_eq!(
        ok(Parser::File, script, &edits),
        "#!/bin/bash\nMEMORY=2048\njava -Xmx2048M -jar server.jar nogui\nMEMORY_NOTE=keep\n"
    );
    // CRLF stays CRLF; a last line without its ending gets one.
    assert_eq!(ok(Parser::File, "a=1\r\nb=2", &[set("b=", "b=3")]), "a=1\r\nb=3\r\n");
    assert_eq!(ok(Parser::File, "", &[set("a", "b")]), "");
}

const PALWORLD_INI: &str = "\
; This configuration file is a sample of the default server settings.
; Changes to this file will NOT be reflected on the server.
[/Script/Pal.PalGameWorldSettings]
OptionSettings=(Difficulty=None,DayTimeSpeedRate=1.000000,ServerName=\"Default Palworld Server\")
";

#[test]
fn ini_sections_with_dots_are_bracketed_in_the_key() {
    let edits = [set("[/Script/Pal.PalGameWorldSettings].OptionSettings", "(Difficulty=None,ServerName=\"Mine\")")];
    assert_eq!(
        ok(Parser::Ini, PALWORLD_INI, &edits),
        "\
; This configuration file is a sample of the default server settings.
; Changes to this file will NOT be reflected on the server.
[/Script/Pal.PalGameWorldSettings]
OptionSettings=(Difficulty=None,ServerName=\"Mine\")
"
    );
}

#[test]
fn ini_keys_and_sections_are_created_and_the_rest_kept() {
    // Night of the Dead's ServerSettings.ini, Valheim-like spacing, CRLF.
    let text = "[ServerSettings]\r\nServerName = Old\r\nPassword =\r\n; the admin's\r\n\r\n\
                [SystemSettings]\r\nSaveName=\"World1\"\r\nDefaultMessageOfTheDay=Hi: there\r\n";
    let edits = [
        set("ServerSettings.ServerName", "New Server"),
        set("ServerSettings.Password", "secret"),
        set("ServerSettings.MaxPlayers", "8"),
        replace("SystemSettings.SaveName", &[("World1", "World2")]),
        replace("SystemSettings.DefaultMessageOfTheDay", &[("Bye", "x")]),
        set("GameSettings/General.MODSelect", "1"),
        set("Version", "2"),
        replace("SystemSettings.Missing", &[("regex:.*", "x")]),
    ];
    assert_eq!(
        ok(Parser::Ini, text, &edits),
        "Version=2\r\n[ServerSettings]\r\nServerName = New Server\r\nPassword =secret\r\n; the admin's\r\n\
         MaxPlayers=8\r\n\r\n[SystemSettings]\r\nSaveName=World2\r\nDefaultMessageOfTheDay=Hi: there\r\n\
         \r\n[GameSettings/General]\r\nMODSelect=1\r\n"
    );
    assert_eq!(ok(Parser::Ini, "", &[set("Server.Port", "2456")]), "[Server]\nPort=2456\n");
    assert_eq!(ini_key("A.b.c"), ("A".to_string(), "b.c".to_string()));
}

const REFORGER_JSON: &str = r#"{
    "bindAddress": "",
    "bindPort": 2001,
    "game": {
        "name": "Old",
        "maxPlayers": 64,
        "visible": true,
        "gameProperties": {
            "fastValidation": false
        },
        "mods": [
            {
                "modId": "A",
                "name": "x"
            },
            {
                "modId": "B",
                "name": "y"
            }
        ]
    },
    "a": 1.5
}
"#;

#[test]
fn json_keys_nested_and_in_lists_keep_their_order_and_are_typed() {
    let edits = [
        set("bindPort", "2302"),
        set("bindAddress", "0.0.0.0"),
        set("game.name", "My Server"),
        set("game.visible", "false"),
        replace("game.maxPlayers", &[("64", "32")]),
        replace("game.gameProperties.fastValidation", &[("true", "nope")]),
        set("game.gameProperties.battlEye", "true"),
        set("game.mods.*.version", "1.0"),
        set("game.mods[1].name", "second"),
        set("rcon.port", "-19999"),
        replace("missing.key", &[("regex:.*", "x")]),
    ];
    assert_eq!(
        ok(Parser::Json, REFORGER_JSON, &edits),
        r#"{
    "bindAddress": "0.0.0.0",
    "bindPort": 2302,
    "game": {
        "name": "My Server",
        "maxPlayers": 32,
        "visible": false,
        "gameProperties": {
            "fastValidation": false,
            "battlEye": true
        },
        "mods": [
            {
                "modId": "A",
                "name": "x",
                "version": "1.0"
            },
            {
                "modId": "B",
                "name": "second",
                "version": "1.0"
            }
        ]
    },
    "a": 1.5,
    "rcon": {
        "port": -19999
    }
}
"#
    );
}

#[test]
fn values_are_typed_as_wings_types_them() {
    assert_eq!(typed("25565"), Value::Number(25565.into()));
    assert_eq!(typed("+7"), Value::Number(7.into()));
    assert_eq!(typed("007"), Value::Number(7.into()));
    assert_eq!(typed("true"), Value::Bool(true));
    assert_eq!(typed("1.5"), Value::String("1.5".into()));
    assert_eq!(typed("True"), Value::String("True".into()));
    assert_eq!(typed("99999999999999999999"), Value::String("99999999999999999999".into()));
    assert_eq!(typed(""), Value::String("".into()));
}

#[test]
fn json_lists_are_indexed_and_a_missing_list_gets_its_first_element() {
    let text = r#"{"listeners": [{"host": "0.0.0.0:25577", "query_enabled": false}], "tags": ["a", "b"]}"#;
    let edits = [
        set("listeners[0].host", "0.0.0.0:25565"),
        set("listeners.0.query_enabled", "true"),
        set("tags.*", "z"),
        set("servers[0].address", "localhost:25566"),
    ];
    assert_eq!(
        ok(Parser::Json, text, &edits),
        r#"{
    "listeners": [
        {
            "host": "0.0.0.0:25565",
            "query_enabled": true
        }
    ],
    "tags": [
        "z",
        "z"
    ],
    "servers": [
        {
            "address": "localhost:25566"
        }
    ]
}
"#
    );
    let e = edit(Parser::Json, text, &[set("tags[5]", "x")]).unwrap_err();
    assert_eq!(e, "tags[5]: index 5 is past the end of a list of 2");
    let e = edit(Parser::Json, text, &[set("tags.first", "x")]).unwrap_err();
    assert!(e.contains("`first` is not an index"), "{e}");
    let e = edit(Parser::Json, r#"{"a": "text"}"#, &[set("a.b", "x")]).unwrap_err();
    assert_eq!(e, "a.b: the value there is a string, which has no keys");
    assert!(edit(Parser::Json, "{\"a\": ", &[]).unwrap_err().starts_with("not JSON: "));
    // A missing (empty) file becomes an object.
    assert_eq!(ok(Parser::Json, "", &[set("port", "1")]), "{\n    \"port\": 1\n}\n");
}

const SPIGOT_YML: &str = "\
# This is the main configuration file for Spigot.
# As you can see, there's tons to configure.

settings:
  bungeecord: false
  timeout-time: 60
  restart-script: ./start.sh
world-settings:
  default:
    verbose: false
  world_nether:
    verbose: true # inline comments are lost
messages:
  whitelist: You are not whitelisted on this server!
config-version: 12
";

#[test]
fn yaml_keeps_key_order_and_its_head_comments() {
    let edits = [
        set("settings.bungeecord", "true"),
        set("settings.restart-script", "./run.sh"),
        set("world-settings.*.verbose", "false"),
        set("world-settings.*.view-distance", "8"),
        replace("messages.whitelist", &[("regex:not whitelisted", "not invited")]),
        replace("config-version", &[("11", "99")]),
        set("proxies.velocity.enabled", "true"),
        set("proxies.velocity.secret", "123abc"),
    ];
    assert_eq!(
        ok(Parser::Yaml, SPIGOT_YML, &edits),
        "\
# This is the main configuration file for Spigot.
# As you can see, there's tons to configure.

settings:
  bungeecord: true
  timeout-time: 60
  restart-script: ./run.sh
world-settings:
  default:
    verbose: false
    view-distance: 8
  world_nether:
    verbose: false
    view-distance: 8
messages:
  whitelist: You are not invited on this server!
config-version: 12
proxies:
  velocity:
    enabled: true
    secret: 123abc
"
    );
}

#[test]
fn yaml_like_empyrions_dedicated_yaml_and_a_missing_file() {
    let text =
        "ServerConfig:\n  Srv_Port: 30000\n  Srv_Name: My Server\n  Srv_Password: ''\nGameConfig:\n  Seed: 1011345\n";
    let edits = [
        set("ServerConfig.Srv_Port", "30010"),
        set("ServerConfig.Srv_Name", "Empyrion: 1"),
        set("ServerConfig.Srv_Password", "0042"),
        set("GameConfig.Seed", "12"),
    ];
    assert_eq!(
        ok(Parser::Yaml, text, &edits),
        "ServerConfig:\n  Srv_Port: 30010\n  Srv_Name: 'Empyrion: 1'\n  Srv_Password: 42\nGameConfig:\n  Seed: 12\n"
    );
    assert_eq!(ok(Parser::Yaml, "", &[set("a.b", "c")]), "a:\n  b: c\n");
    assert!(edit(Parser::Yaml, "a: [", &[]).unwrap_err().starts_with("not YAML: "));
}

const SPACE_ENGINEERS: &str = r#"<?xml version="1.0"?>
<MyConfigDedicated xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <!-- Session settings -->
  <SessionSettings>
    <MaxPlayers>4</MaxPlayers>
    <GameMode>Survival</GameMode>
  </SessionSettings>
  <ServerPort>27016</ServerPort>
  <ServerName>Old &amp; tired</ServerName>
  <Administrators />
  <Banned></Banned>
</MyConfigDedicated>
"#;

#[test]
fn xml_elements_are_set_and_created_and_the_rest_written_as_it_was() {
    let edits = [
        set("MyConfigDedicated.ServerPort", "27020"),
        set("MyConfigDedicated.ServerName", "Rock & <Roll>"),
        replace("MyConfigDedicated.SessionSettings.MaxPlayers", &[("4", "8")]),
        replace("MyConfigDedicated.SessionSettings.GameMode", &[("Creative", "x")]),
        set("MyConfigDedicated.SessionSettings.EnableSaving", "true"),
        set("MyConfigDedicated.Administrators.unsignedLong", "76561198000000000"),
        set("MyConfigDedicated.Banned", "none"),
        replace("MyConfigDedicated.Missing", &[("regex:.*", "x")]),
    ];
    assert_eq!(
        ok(Parser::Xml, SPACE_ENGINEERS, &edits),
        r#"<?xml version="1.0"?>
<MyConfigDedicated xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <!-- Session settings -->
  <SessionSettings>
    <MaxPlayers>8</MaxPlayers>
    <GameMode>Survival</GameMode>
    <EnableSaving>true</EnableSaving>
  </SessionSettings>
  <ServerPort>27020</ServerPort>
  <ServerName>Rock &amp; &lt;Roll&gt;</ServerName>
  <Administrators>
    <unsignedLong>76561198000000000</unsignedLong>
  </Administrators>
  <Banned>none</Banned>
</MyConfigDedicated>
"#
    );
    // The current value a replacement sees is unescaped.
    let out = ok(Parser::Xml, SPACE_ENGINEERS, &[replace("MyConfigDedicated.ServerName", &[("Old & tired", "New")])]);
    assert!(out.contains("<ServerName>New</ServerName>"), "{out}");
}

#[test]
fn xml_attributes_are_matched_and_set_as_wings_does() {
    // 7 Days to Die's serverconfig.xml.
    let text = "<?xml version=\"1.0\"?>\n<ServerSettings>\n\t<property name=\"ServerPort\" value=\"26900\"/>\n\
                \t<property name='Region' value='Europe'/>\n</ServerSettings>\n";
    let edits = [
        set("ServerSettings.property[@name='ServerPort']", "[value='26901']"),
        replace(
            "ServerSettings.property[name='Region']",
            &[("Asia", "[value='x']"), ("regex:^Eu.*", "[value='Asia']")],
        ),
        replace("ServerSettings.property[@name='ServerPort']", &[("26900", "[value='1']")]),
        set("ServerSettings.property[@name='Server.MaxPlayers']", "[value='8']"),
    ];
    assert_eq!(
        ok(Parser::Xml, text, &edits),
        "<?xml version=\"1.0\"?>\n<ServerSettings>\n\t<property name=\"ServerPort\" value=\"26901\"/>\n\
         \t<property name=\"Region\" value=\"Asia\"/>\n\t<property name=\"Server.MaxPlayers\" value=\"8\"/>\n</ServerSettings>\n"
    );
}

#[test]
fn xml_wildcards_take_every_element_and_create_none() {
    let text = "<Root><World><Pvp>0</Pvp></World><World><Pvp>1</Pvp></World><Other/></Root>";
    let edits = [set("Root.*.Pvp", "2"), set("Root.Missing.*", "x")];
    assert_eq!(
        ok(Parser::Xml, text, &edits),
        "<Root><World><Pvp>2</Pvp></World><World><Pvp>2</Pvp></World><Other/></Root>"
    );
}

#[test]
fn a_missing_xml_file_gets_a_declaration_and_its_root() {
    let edits = [set("Config.Server.Port", "9000"), set("Config.Name", "n")];
    assert_eq!(
        ok(Parser::Xml, "", &edits),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Config>\n  <Server>\n    <Port>9000</Port>\n  </Server>\n  <Name>n</Name>\n</Config>\n"
    );
    let e = edit(Parser::Xml, SPACE_ENGINEERS, &[set("Other.Port", "1")]).unwrap_err();
    assert_eq!(e, "Other.Port: the root element is <MyConfigDedicated>, not the key's `Other`");
    assert!(edit(Parser::Xml, "<a><b></a>", &[]).unwrap_err().starts_with("not XML: "));
    assert!(edit(Parser::Xml, "<a>", &[]).unwrap_err().starts_with("not XML: "));
    assert!(edit(Parser::Xml, "<a/>", &[set("a.b[x]", "1")]).unwrap_err().contains("is not TAG or TAG[@ATTR='VALUE']"));
}

/// A scratch directory of its own.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("mtn-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn files_are_edited_in_place_created_when_missing_and_left_on_error() {
    let dir = TempDir::new("apply");
    let file = |name: &str, parser, edits| ConfigFile { path: dir.0.join(name).display().to_string(), parser, edits };

    let missing = file("LF/Saved/Config/ServerSettings.ini", Parser::Ini, vec![set("ServerSettings.ServerName", "x")]);
    apply(&missing).unwrap();
    assert_eq!(std::fs::read_to_string(&missing.path).unwrap(), "[ServerSettings]\nServerName=x\n");

    // Created even when the edits add nothing, as Wings does.
    let empty = file("start.sh", Parser::File, vec![set("java", "java -jar x")]);
    apply(&empty).unwrap();
    assert_eq!(std::fs::read_to_string(&empty.path).unwrap(), "");

    // A byte order mark is kept.
    let bom = file("server.properties", Parser::Properties, vec![set("server-port", "1")]);
    std::fs::write(&bom.path, "\u{feff}server-port=2\n").unwrap();
    apply(&bom).unwrap();
    assert_eq!(std::fs::read_to_string(&bom.path).unwrap(), "\u{feff}server-port=1\n");

    let broken = file("config.json", Parser::Json, vec![set("a", "1")]);
    std::fs::write(&broken.path, "{not json").unwrap();
    assert!(apply(&broken).unwrap_err().starts_with("not JSON: "));
    assert_eq!(std::fs::read_to_string(&broken.path).unwrap(), "{not json");

    let binary = file("data.yml", Parser::Yaml, vec![set("a", "1")]);
    std::fs::write(&binary.path, [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(apply(&binary).unwrap_err(), "not UTF-8 text");

    let in_a_file = file("start.sh/x.ini", Parser::Ini, vec![set("a", "1")]);
    assert!(apply(&in_a_file).unwrap_err().starts_with("cannot "));
}
