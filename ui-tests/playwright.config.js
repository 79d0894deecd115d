/**
 * Galata configuration. The browser is Debian's Chromium (apt-get install
 * chromium), so no Playwright browser download is needed; set
 * HPCML_CHROMIUM to use another binary. Videos are off (they need a
 * downloaded ffmpeg).
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

module.exports = {
  ...baseConfig,
  use: {
    ...baseConfig.use,
    // Videos need Playwright's own ffmpeg download: off.
    video: 'off',
    launchOptions: {
      executablePath: process.env.HPCML_CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox']
    }
  },
  webServer: {
    command: 'jlpm start',
    url: 'http://localhost:8888/lab',
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
