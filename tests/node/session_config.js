// Usage: node session_config.js BASE_URL API_KEY EMAIL
// Prints the SDK's getSessionConfig() as JSON; on failure, the error's class and message on stderr.
const { OrgaAI } = require("@orga-ai/node");

const [baseUrl, apiKey, userEmail] = process.argv.slice(2);
new OrgaAI({ apiKey, userEmail, baseUrl })
  .getSessionConfig()
  .then((config) => {
    process.stdout.write(JSON.stringify(config) + "\n");
  })
  .catch((err) => {
    process.stderr.write(`${err.constructor.name}: ${err.message}\n`);
    process.exit(1);
  });
