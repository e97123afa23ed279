# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_defender_ingest_global_optspecs
    string join \n p/profile= state-dir= v/verbose q/quiet ca-bundle= proxy= connect-timeout= request-timeout= max-retries= calls-per-minute= h/help V/version
end

function __fish_defender_ingest_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_defender_ingest_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_defender_ingest_using_subcommand
    set -l cmd (__fish_defender_ingest_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "authorize" -d 'Connect a profile to a Defender for Endpoint tenant and store its credentials in the OS keyring'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "test" -d 'Check that the credentials work and each endpoint returns data that parses; moves no cursor'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "enable" -d 'Switch ingestion on: `pull` fetches data for this profile from now on'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "disable" -d 'Switch ingestion off; configuration, credentials and cursors are kept'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "status" -d 'Show a profile: tenant, enabled, authorized, and each endpoint\'s position. Never prints a secret'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "pull" -d 'Fetch every record new or changed since the last pull and write it as one JSON line'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "logout" -d 'Remove a profile\'s credentials from the OS keyring (keeps configuration and cursors)'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "sandbox" -d 'Serve the built-in sandbox tenant (a local Entra ID + Defender API) in the foreground'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "demo" -d 'Run the whole journey against a throwaway sandbox: authorize, test, enable, pull to stdout'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "generate" -d 'Write shell completions and the man page (used to refresh `completions/`)'
complete -c defender-ingest -n "__fish_defender_ingest_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l tenant -d 'Entra tenant id (GUID) or domain; required the first time' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l client-id -d 'Application (client) id of the app registration; required the first time' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l flow -d 'How to sign in' -r -f -a "browser\t'Authorization code + PKCE; the browser redirects to a listener on 127.0.0.1'
device-code\t'Device code: sign in on any other device; for hosts without a browser'
client-secret\t'App-only client credentials with a client secret; for unattended hosts'"
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l cloud -d 'Presets for the sign-in authority, the API host and the scope' -r -f -a "global\t'Commercial (worldwide) cloud'
gcc\t'US Government Community Cloud'
gcc-high\t'US Government Community Cloud High'
dod\t'US Department of Defense'"
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l login-url -d 'Override the sign-in authority, e.g. http://127.0.0.1:8400' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l api-url -d 'Override the API base URL' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l port -d 'Loopback port for the browser redirect [default: any free port]' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l timeout -d 'Seconds to wait for the browser or the device-code sign-in' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l no-browser -d 'Do not launch a browser; print the sign-in URL on stderr and wait'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -l client-secret-stdin -d 'With --flow client-secret: read the client secret from stdin'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand authorize" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -l json -d 'Print one JSON object on stdout instead of a table on stderr'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand test" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand enable" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand disable" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -l json -d 'Print one JSON object on stdout'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand status" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l output -d 'Append JSONL to PATH (\'-\' is stdout)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l since -d 'First run only: how far back to start, a duration (7d, 12h) or an RFC 3339 time [default: 7d]' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l lookback -d 'Re-read alerts updated this long before the cursor, for records that become visible late' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l investigation-window -d 'Re-read investigations started within this window; they change without a timestamp' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l deadline -d 'Stop starting new requests after this long (keep it under the cron interval); what was written is kept and the rest comes next pull' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand pull" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand logout" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l port -d 'Port on 127.0.0.1 [default: any free port]' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l alerts -d 'How many alerts the tenant starts with' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l seed -d 'Seed for the synthetic data' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l tls-ca-out -d 'Serve HTTPS with a freshly generated CA; its PEM is written to this path' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -l chunked -d 'Send API pages chunked as they are rendered, without a Content-Length (as a streaming OData service may), instead of each rendered whole first'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand sandbox" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l alerts -d 'How many alerts the sandbox tenant starts with' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand demo" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -s p -l profile -d 'Which connection (tenant + app registration) to use' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -l state-dir -d 'Where the TOML state and lock files live [default: the platform\'s state dir]' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -l ca-bundle -d 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy\'s CA). `SSL_CERT_FILE` does the same' -r -F
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -l proxy -d 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment\'s proxies are used, never for loopback hosts' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -l connect-timeout -d 'Seconds to wait for a connection (TCP, the proxy\'s CONNECT, TLS)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -l request-timeout -d 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -l max-retries -d 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -l calls-per-minute -d 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)' -r
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -s v -l verbose -d 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -s q -l quiet -d 'Less logging on stderr: errors only'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -s h -l help -d 'Print help'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand generate" -s V -l version -d 'Print version'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "authorize" -d 'Connect a profile to a Defender for Endpoint tenant and store its credentials in the OS keyring'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "test" -d 'Check that the credentials work and each endpoint returns data that parses; moves no cursor'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "enable" -d 'Switch ingestion on: `pull` fetches data for this profile from now on'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "disable" -d 'Switch ingestion off; configuration, credentials and cursors are kept'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "status" -d 'Show a profile: tenant, enabled, authorized, and each endpoint\'s position. Never prints a secret'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "pull" -d 'Fetch every record new or changed since the last pull and write it as one JSON line'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "logout" -d 'Remove a profile\'s credentials from the OS keyring (keeps configuration and cursors)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "sandbox" -d 'Serve the built-in sandbox tenant (a local Entra ID + Defender API) in the foreground'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "demo" -d 'Run the whole journey against a throwaway sandbox: authorize, test, enable, pull to stdout'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "generate" -d 'Write shell completions and the man page (used to refresh `completions/`)'
complete -c defender-ingest -n "__fish_defender_ingest_using_subcommand help; and not __fish_seen_subcommand_from authorize test enable disable status pull logout sandbox demo generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
