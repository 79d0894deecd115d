import { IBackendConfigInfo, IProject } from '../types';
import {
  configPathOfRun,
  defaultConfigPath,
  defaultEntryPoint,
  defaultRunName,
  isInside
} from '../sidebar/defaults';

const config = (path: string, kind: string, name: string): IBackendConfigInfo => ({
  path,
  kind,
  connection: kind,
  config: { Name: name },
  problems: []
});

describe('sidebar defaults', () => {
  const configs = [
    config('backend-configs/local.yaml', 'local', 'Local, 2 threads'),
    config('backend-configs/slurm.yaml', 'ssh', 'Cluster'),
    { ...config('backend-configs/broken.yaml', 'ssh', 'x'), config: null }
  ];

  it('preselects the config of the defaultBackend setting', () => {
    expect(defaultConfigPath(configs, 'slurm')).toBe('backend-configs/slurm.yaml');
    expect(defaultConfigPath(configs, 'Cluster')).toBe('backend-configs/slurm.yaml');
    expect(defaultConfigPath(configs, 'ssh')).toBe('backend-configs/slurm.yaml');
    expect(defaultConfigPath(configs, 'local')).toBe('backend-configs/local.yaml');
    expect(defaultConfigPath([], 'local')).toBe('');
    expect(defaultConfigPath(configs, 'unicore')).toBe('');
  });

  it('picks main, else the first entry point', () => {
    const project = (names: string[]): IProject => ({
      name: 'p',
      path: 'p',
      mlproject_file: null,
      env_note: null,
      backend_configs: [],
      entry_points: names.map(name => ({ name, command: '', parameters: [], json_schema: {} }))
    });
    expect(defaultEntryPoint(project(['train', 'main']))).toBe('main');
    expect(defaultEntryPoint(project(['train']))).toBe('train');
  });

  it('names runs as the server does', () => {
    expect(defaultRunName('train', new Date(2025, 0, 2, 3, 4, 5))).toBe('train-0102-030405');
  });

  it('relates paths', () => {
    expect(configPathOfRun('/srv/digits', '/srv/digits/backend-configs/local.yaml')).toBe(
      'backend-configs/local.yaml'
    );
    expect(configPathOfRun('/srv/digits', null)).toBe('');
    expect(isInside('digits/sub', 'digits')).toBe(true);
    expect(isInside('digits2', 'digits')).toBe(false);
    expect(isInside('anything', '')).toBe(true);
  });
});
