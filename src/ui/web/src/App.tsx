import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { formatCount, type GroupBy } from './api';
import { AlertsView } from './AlertsView';
import { EdgePanel } from './EdgePanel';
import { FlowsView } from './FlowsView';
import { LiveStore } from './live';
import { MapView, type ServiceMode } from './MapView';
import { PoliciesView } from './PoliciesView';
import { ServicePanel, ServicesView, useServices } from './ServicesView';
import { serviceId } from './serviceMap';

type Tab = 'map' | 'flows' | 'services' | 'policies' | 'alerts';

export function App() {
  const live = useMemo(() => new LiveStore(), []);
  useSyncExternalStore(live.subscribe, live.getVersion);
  const [tab, setTab] = useState<Tab>('map');
  const [group, setGroup] = useState<GroupBy>('workload');
  const [window, setWindow] = useState('5m');
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [selectedService, setSelectedService] = useState<string | undefined>(undefined);
  const [serviceMode, setServiceMode] = useState<ServiceMode>('through');
  const [serviceFilter, setServiceFilter] = useState('');
  const { services } = useServices(tab === 'map' ? 2000 : 0);
  const service = services?.find((v) => serviceId(v) === selectedService);

  useEffect(() => {
    live.connect(group, window);
    setSelected(undefined);
    return () => live.close();
  }, [live, group, window]);

  const edge = selected ? live.edges.get(selected) : undefined;
  const firing = live.alerts.filter((a) => a.state === 'firing').length;

  return (
    <div className="app">
      <header className="top">
        <div className="brand">
          <span className="logo">≋</span> weir <span className="muted">flows</span>
        </div>
        <nav>
          {(['map', 'flows', 'services', 'policies', 'alerts'] as const).map((t) => (
            <button key={t} className={tab === t ? 'on' : ''} onClick={() => setTab(t)} data-testid={`tab-${t}`}>
              {t}
              {t === 'alerts' && firing > 0 && <span className="pill">{firing}</span>}
            </button>
          ))}
        </nav>
        <div className="controls">
          <label>
            group by
            <select value={group} onChange={(e) => setGroup(e.target.value as GroupBy)} data-testid="group-by">
              <option value="workload">workload</option>
              <option value="namespace">namespace</option>
              <option value="identity">identity</option>
            </select>
          </label>
          <label>
            window
            <select value={window} onChange={(e) => setWindow(e.target.value)}>
              <option>1m</option>
              <option>5m</option>
              <option>1h</option>
            </select>
          </label>
          <span className={`status ${live.connected ? 'up' : 'down'}`} data-testid="status">
            <i /> {live.connected ? `${formatCount(Math.round(live.flowsPerSecond))} flows/s` : 'offline'}
          </span>
        </div>
      </header>
      <main>
        {tab === 'map' && (
          <div className="map-layout">
            <div className="map-host">
              <MapView
                live={live}
                group={group}
                selected={selected}
                onSelect={(k) => (setSelected(k), setSelectedService(undefined))}
                services={{
                  views: services,
                  mode: serviceMode,
                  onMode: setServiceMode,
                  filter: serviceFilter,
                  onFilter: setServiceFilter,
                  selected: selectedService,
                  onSelect: (id) => (setSelectedService(id), setSelected(undefined)),
                }}
              />
            </div>
            {edge && <EdgePanel edge={edge} group={group} onClose={() => setSelected(undefined)} />}
            {!edge && service && <ServicePanel key={selectedService} view={service} onClose={() => setSelectedService(undefined)} ports={services?.filter((v) => v.service === service.service)} onPort={setSelectedService} />}
          </div>
        )}
        {tab === 'flows' && <FlowsView live={live} />}
        {tab === 'services' && <ServicesView />}
        {tab === 'policies' && <PoliciesView />}
        {tab === 'alerts' && <AlertsView live={live} />}
      </main>
    </div>
  );
}
