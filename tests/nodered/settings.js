// Node-RED for the test suite (tests/nodered/runner.py): headless, on 127.0.0.1 only, with
// nothing that installs modules or phones home. The runner sets the port and the userDir.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.E2M_NODE_RED_PORT),
    flowFile: "flows.json",
    credentialSecret: false,
    disableEditor: true, // the Admin API (POST /flows) stays; no browser is involved
    httpNodeRoot: false, // no `http in` endpoints
    externalModules: {
        autoInstall: false,
        palette: { allowInstall: false, allowUpload: false },
        modules: { allowInstall: false },
    },
    functionExternalModules: false,
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    logging: { console: { level: "info", metrics: false, audit: false } },
    editorTheme: { tours: false, projects: { enabled: false }, palette: { catalogues: [] } },
};
