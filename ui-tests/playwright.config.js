/**
 * Galata configuration. The browser is Debian's Chromium (apt-get install
 * chromium), so no Playwright browser download is needed; set
 * HPCML_CHROMIUM to use another binary. Videos are off (they need a
 * downloaded ffmpeg).
 *
 * HPCML_UI_PORT (default 8888) is the port of the lab server the tests
 * start (jupyter_server_test_config.py reads the same variable), so two
 * suites can run at the same time on one machine.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.HPCML_UI_PORT || '8888';
const baseURL = `http://localhost:${port}`;

module.exports = {
  ...baseConfig,
  // Never serve the HTML report at the end (it would wait for a browser).
  reporter: [[process.env.CI ? 'github' : 'list'], ['html', { open: 'never' }]],
  // One lab server and 2 CPUs: tests share the server, run them one by one.
  workers: 1,
  use: {
    ...baseConfig.use,
    baseURL,
    // Videos need Playwright's own ffmpeg download: off.
    video: 'off',
    launchOptions: {
      executablePath: process.env.HPCML_CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox']
    }
  },
  webServer: {
    command: 'jlpm start',
    url: `${baseURL}/lab`,
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
