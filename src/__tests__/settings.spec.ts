import schema from '../../schema/lab/plugin.json';
import { DEFAULT_SETTINGS, normalizeSettings } from '../settings';

describe('normalizeSettings', () => {
  it('matches the defaults of schema/lab/plugin.json', () => {
    const defaults = Object.fromEntries(
      Object.entries(schema.properties).map(([key, value]) => [
        key,
        (value as { default: unknown }).default
      ])
    );
    expect(defaults).toEqual(DEFAULT_SETTINGS);
    expect(normalizeSettings(defaults)).toEqual(DEFAULT_SETTINGS);
  });

  it('replaces invalid entries by their defaults', () => {
    expect(
      normalizeSettings({
        pollInterval: 0.01,
        defaultBackend: '  ',
        mlflowUiUrl: ' http://localhost:5000 ',
        columns: ['state', 3, '']
      })
    ).toEqual({
      pollInterval: 0.5,
      defaultBackend: 'local',
      loadMagicsInKernels: false,
      mlflowUiUrl: 'http://localhost:5000',
      columns: ['state']
    });
    expect(normalizeSettings(null)).toEqual(DEFAULT_SETTINGS);
  });
});
